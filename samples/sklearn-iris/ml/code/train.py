"""Train a random forest on the iris CSV of the `train` channel, SageMaker script-mode style.

The CSV has a header row and the label (species index) in the first column.  The model goes to SM_MODEL_DIR
(model.joblib), the metrics to SM_OUTPUT_DATA_DIR (metrics.json).
"""
import argparse
import glob
import json
import os

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--n-estimators", type=int, default=100)
    p.add_argument("--max-depth", type=int, default=None)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data"))
    p.add_argument("--output-data-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR", "output"))
    return p.parse_args()


def load(channel_dir):
    files = sorted(glob.glob(os.path.join(channel_dir, "*.csv")))
    if not files:
        raise FileNotFoundError(f"no .csv files in the train channel {channel_dir}")
    data = np.vstack([np.loadtxt(f, delimiter=",", skiprows=1) for f in files])
    return data[:, 1:], data[:, 0].astype(int)


def main():
    args = parse_args()
    X, y = load(args.train)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=args.test_fraction, random_state=0,
                                                        stratify=y)
    model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=0)
    model.fit(X_train, y_train)
    accuracy = accuracy_score(y_test, model.predict(X_test))
    print(f"test accuracy: {accuracy:.4f} on {len(y_test)} samples")

    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    os.makedirs(args.output_data_dir, exist_ok=True)
    with open(os.path.join(args.output_data_dir, "metrics.json"), "w") as f:
        json.dump({"accuracy": accuracy, "train_samples": len(y_train), "test_samples": len(y_test),
                   "n_estimators": args.n_estimators, "max_depth": args.max_depth}, f)


if __name__ == "__main__":
    main()
