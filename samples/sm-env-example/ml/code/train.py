"""Read the job the way public SageMaker examples do: argparse defaults from SM_* environment variables.

Writes what it found to SM_OUTPUT_DATA_DIR/summary.json.  Under smhost's embedded Python the same values
are also available, typed, from `import smhost`; the script checks that both agree.
"""
import argparse
import json
import os


def parse_args():
    parser = argparse.ArgumentParser()
    # hyperparameters arrive as command-line arguments
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--optimizer", type=str, default="sgd")
    # the job's layout, as in the SageMaker Python SDK examples
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--output-data-dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
    parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    parser.add_argument("--hosts", type=list, default=json.loads(os.environ["SM_HOSTS"]))
    parser.add_argument("--current-host", type=str, default=os.environ["SM_CURRENT_HOST"])
    parser.add_argument("--num-gpus", type=int, default=int(os.environ["SM_NUM_GPUS"]))
    return parser.parse_args()


def main():
    args = parse_args()
    hps = json.loads(os.environ["SM_HPS"])
    training_env = json.loads(os.environ["SM_TRAINING_ENV"])
    summary = {
        "args": vars(args),
        "hps": hps,
        "channels": json.loads(os.environ["SM_CHANNELS"]),
        "train_files": sorted(os.listdir(args.train)),
        "module_name": training_env["module_name"],
        "is_master": training_env["is_master"],
    }
    try:
        import smhost  # smhost's built-in module: the same job, typed, no environment parsing
    except ImportError:
        summary["smhost_module"] = None
    else:
        assert smhost.hyperparameters == hps, (smhost.hyperparameters, hps)
        assert smhost.model_dir == args.model_dir and smhost.channels["train"] == args.train
        assert smhost.hosts == args.hosts and smhost.current_host == args.current_host
        summary["smhost_module"] = "agrees with SM_* variables"
    for k, v in summary.items():
        print(f"{k}: {v}")
    os.makedirs(args.output_data_dir, exist_ok=True)
    with open(os.path.join(args.output_data_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    with open(os.path.join(args.model_dir, "model.txt"), "w") as f:
        f.write(f"trained {args.epochs} epochs with {args.optimizer} at lr={args.learning_rate}\n")


if __name__ == "__main__":
    main()
