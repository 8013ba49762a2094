"""Black-box tests of `smhost train` against temporary ML roots: argv, environment, files, exit codes.

The oracle for argv and SM_* values is the toolkit's own mapping code (sagemaker_training.mapping), restated
below in a few lines of Python: json.loads per value, str() for argv, json.dumps(sort_keys, compact) for env.
"""
import json
import os
import socket
import subprocess

import pytest
from conftest import SMHOST, dump_env_script, run_smhost, seen

# ---- the toolkit's mapping, as the oracle --------------------------------------------------------------------


def decode(hps):
    out = {}
    for k, v in hps.items():
        try:
            v = json.loads(v)
        except (ValueError, TypeError):
            pass
        out[k] = v
    return out


def to_cmd_args(mapping):
    def _decode(obj):
        return "" if obj is None else str(obj)

    def arg_name(obj):
        s = _decode(obj)
        return ("--%s" % s if len(s) > 1 else "-%s" % s) if s else ""

    def arg_value(value):
        if hasattr(value, "items"):
            return ",".join("%s=%s" % (k, v) for k, v in sorted(value.items()))
        return _decode(value)

    keys = sorted(mapping)
    out = []
    for k in keys:
        out += [arg_name(k), arg_value(mapping[k])]
    return out


def env_value(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


FIXED = {
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics", "sagemaker_region",
    "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name", "_tuning_objective_metric",
    "sagemaker_s3_output",
}


def split(decoded):
    user = {k: v for k, v in decoded.items() if not (k.startswith("sagemaker_") or k in FIXED)}
    fw = {k: v for k, v in decoded.items() if (k.startswith("sagemaker_") or k in FIXED) and k not in FIXED}
    return user, fw


# ---- helpers --------------------------------------------------------------------------------------------------


def job(mlroot, hps, sdk_style=True, program="train", env=None, channels=("train",), **rc):
    mlroot.hyperparameters(hps, sdk_style=sdk_style)
    mlroot.inputdataconfig(list(channels))
    mlroot.resourceconfig(**rc) if rc else mlroot.resourceconfig()
    dump_env_script(mlroot, program)
    e = {"SAGEMAKER_PROGRAM": program}
    e.update(env or {})
    return run_smhost(["train"], mlroot=mlroot, env=e)


CONTRACT_VECTORS = [
    ({"da-sh": "1", "un_der": "2", "un-sh": "3", "da_der": "2"},
     ["--da-sh", "1", "--da_der", "2", "--un-sh", "3", "--un_der", "2"]),
    ({"U": "1", "b": "2", "T": "", "": "42"}, ["", "42", "-T", "", "-U", "1", "-b", "2"]),
    ({"nested": ["1", ["2", "3", [["6"]]]]}, ["--nested", "['1', ['2', '3', [['6']]]]"]),
    ({"map": {"a": [1, 3, 4]}, "channel_dirs": {"train": "foo", "eval": "bar"}},
     ["--channel_dirs", "eval=bar,train=foo", "--map", "a=[1, 3, 4]"]),
    ({"truthy": True, "falsy": False}, ["--falsy", "False", "--truthy", "True"]),
    ({"floats": 4.0, "int": 2}, ["--floats", "4.0", "--int", "2"]),
]


@pytest.mark.parametrize("hps,argv", CONTRACT_VECTORS)
def test_contract_vectors_reach_the_program(mlroot, hps, argv):
    # Values already decoded in the contract's table: the SDK JSON-encodes them into the file.
    r = job(mlroot, hps)
    assert r.returncode == 0, r.stderr
    s = seen(mlroot)
    assert s["argv"] == argv
    assert json.loads(s["env"]["SM_USER_ARGS"]) == argv
    assert s["env"]["SM_HPS"] == json.dumps(hps, sort_keys=True, separators=(",", ":"))


RAW_FILE = {
    "optimizer": "adam",                 # raw text: not JSON, stays a string
    "epochs": "10",                      # JSON int
    "lr": "1e-5",                        # JSON float -> 1e-05
    "big": "12345678901234567890",       # full precision
    "huge_float": "1.5e300",
    "neg_zero": "-0.0",
    "sci": "1E+16",
    "quoted": "\"adam\"",               # SDK style string
    "list": "[1, 2.5, \"s\", null, true]",
    "quotes": "[\"it's\", \"x\"]",
    "dict": "{\"y\": 1, \"x\": {\"b\": [1, 2]}}",
    "none": "null",
    "unicode": "\"caf\u00e9 \u2603 \U0001F600\"",
    "spaces": "a b  c",
    "dollar": "$HOME `id` $(id)",
    "newline": "line1\nline2",
    "a": "1",
    "learning-rate": "0.1",
    "sagemaker_program": "\"ignored.sh\"",
    "sagemaker_debugger_enabled": "true",  # a framework parameter (a distribution flag would launch ranks)
    "sagemaker_region": "\"eu-west-1\"",
    "sagemaker_job_name": "\"my-job\"",
    "_tuning_objective_metric": "\"loss\"",
}


def test_raw_and_sdk_style_hyperparameters_match_the_toolkit(mlroot):
    r = job(mlroot, RAW_FILE, sdk_style=False)
    assert r.returncode == 0, r.stderr
    s = seen(mlroot)
    user, fw = split(decode(RAW_FILE))
    assert s["argv"] == to_cmd_args(user)
    env = s["env"]
    assert env["SM_HPS"] == env_value(user)
    assert env["SM_FRAMEWORK_PARAMS"] == env_value(fw)
    for k, v in user.items():
        assert env["SM_HP_" + k.upper()] == env_value(v), k
    # spot checks of Python's formatting
    argv = s["argv"]
    assert argv[argv.index("--lr") + 1] == "1e-05"
    assert argv[argv.index("--big") + 1] == "12345678901234567890"
    assert argv[argv.index("--huge_float") + 1] == "1.5e+300"
    assert argv[argv.index("--neg_zero") + 1] == "-0.0"
    assert argv[argv.index("--sci") + 1] == "1e+16"
    assert argv[argv.index("--list") + 1] == "[1, 2.5, 's', None, True]"
    assert argv[argv.index("--quotes") + 1] == "[\"it's\", 'x']"
    assert argv[argv.index("--none") + 1] == ""
    assert argv[argv.index("--dict") + 1] == "x={'b': [1, 2]},y=1"
    assert argv[argv.index("-a") + 1] == "1"
    assert env["SM_HP_BIG"] == "12345678901234567890"
    assert env["SM_HP_UNICODE"] == "caf\u00e9 \u2603 \U0001F600"
    assert env["SM_HP_LEARNING-RATE"] == "0.1"
    assert "\\u00e9" in env["SM_TRAINING_ENV"] and "\\ud83d\\ude00" in env["SM_TRAINING_ENV"]
    # SAGEMAKER_PROGRAM wins over sagemaker_program; the framework split
    assert env["SM_USER_ARGS"] and env["SM_USER_ENTRY_POINT"] == "train"
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert env["SAGEMAKER_JOB_NAME"] == "my-job"
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_debugger_enabled": True}


def test_awkward_arguments_arrive_intact(mlroot):
    awkward = {"s": "with space", "q": "it's \"quoted\"", "d": "$PATH;rm -rf /", "n": "a\nb", "u": "\u00fcml\u00e4ut"}
    r = job(mlroot, awkward)
    assert r.returncode == 0, r.stderr
    assert seen(mlroot)["argv"] == to_cmd_args(awkward)


def test_environment_has_every_contract_variable(mlroot):
    r = job(mlroot, {"epochs": 3}, channels=("train", "eval-data"),
            env={"TRAINING_JOB_NAME": "job-1", "AWS_REGION": "us-east-2", "PYTHONPATH": "/x"})
    assert r.returncode == 0, r.stderr
    s = seen(mlroot)
    env, root = s["env"], str(mlroot.path)
    assert s["cwd"] == root + "/code"
    assert env["SM_CHANNELS"] == '["eval-data","train"]'
    assert env["SM_CHANNEL_TRAIN"] == root + "/input/data/train"
    assert env["SM_CHANNEL_EVAL-DATA"] == root + "/input/data/eval-data"
    assert env["SM_MODEL_DIR"] == root + "/model"
    assert env["SM_OUTPUT_DATA_DIR"] == root + "/output/data"
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == root + "/output/intermediate"
    assert env["SM_INPUT_CONFIG_DIR"] == root + "/input/config"
    assert env["SM_MODULE_DIR"] == root + "/code"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_FRAMEWORK_MODULE"] == ""
    assert env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_CURRENT_HOST"] == env["CURRENT_HOST"] == "algo-1"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "local"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert env["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == "[]"
    assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == "[]"
    assert env["SM_IS_HETERO"] == "false"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_NUM_CPUS"] == str(os.cpu_count())
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SAGEMAKER_REGION"] == "us-east-2"
    assert env["PYTHONPATH"].split(":")[:2] == [root + "/code", "/x"]
    assert "SM_TOPOLOGY" not in env
    te = json.loads(env["SM_TRAINING_ENV"])
    assert len(te) == 37
    assert te["job_name"] == "job-1"
    assert te["framework_module"] is None
    assert te["is_modelparallel_enabled"] is None
    assert te["master_hostname"] == "algo-1" and te["is_master"] is True
    assert te["channel_input_dirs"] == {"train": root + "/input/data/train", "eval-data": root + "/input/data/eval-data"}
    assert te["topology"] == []
    assert env["SM_INPUT_DATA_CONFIG"] == env_value(json.loads((mlroot.path / "input/config/inputdataconfig.json").read_text()))


HETERO = {
    "current_host": "algo-3",
    "current_instance_type": "ml.p4d.24xlarge",
    "current_group_name": "gpu",
    "hosts": ["algo-1", "algo-2", "algo-3", "algo-4"],
    "instance_groups": [
        {"instance_group_name": "cpu", "instance_type": "ml.c5.xlarge", "hosts": ["algo-2", "algo-1"]},
        {"instance_group_name": "gpu", "instance_type": "ml.p4d.24xlarge", "hosts": ["algo-4", "algo-3"]},
    ],
    "network_interface_name": "ethwe",
    "topology": [{"name": "x"}],
}


def test_heterogeneous_cluster_and_deterministic_master(mlroot, monkeypatch):
    mlroot.write_json("input/config/resourceconfig.json", HETERO)
    mlroot.hyperparameters({"sagemaker_distribution_instance_groups": ["gpu"]})
    mlroot.inputdataconfig(["train"])
    dump_env_script(mlroot)
    # Every host must resolve before a multi-host job starts: these names only resolve through the test's hosts
    # file, so point the resolver at one (NSS honours HOSTALIASES only for some lookups; use a tiny DNS wait).
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)["env"]
    assert env["SM_IS_HETERO"] == "true"
    assert env["SM_INSTANCE_GROUPS"] == '["cpu","gpu"]'
    assert env["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == '["algo-4","algo-3"]'
    assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["gpu"]'
    assert env["SM_NETWORK_INTERFACE_NAME"] == "ethwe"
    assert env["SM_TOPOLOGY"] == '[{"name":"x"}]'
    assert json.loads(env["SM_INSTANCE_GROUPS_DICT"])["cpu"]["instance_type"] == "ml.c5.xlarge"
    te = json.loads(env["SM_TRAINING_ENV"])
    assert te["distribution_hosts"] == ["algo-4", "algo-3"]
    # The toolkit would say algo-4 (first listed); smhost takes the first sorted distribution host.
    assert te["master_hostname"] == "algo-3"
    assert te["is_master"] is True
    # Another host's view, with the group's hosts listed in another order, agrees on the master.
    other = dict(HETERO, current_host="algo-4")
    other["instance_groups"] = [HETERO["instance_groups"][0],
                                dict(HETERO["instance_groups"][1], hosts=["algo-3", "algo-4"])]
    mlroot.write_json("input/config/resourceconfig.json", other)
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    te2 = json.loads(json.loads(r.stdout)["env"]["SM_TRAINING_ENV"])
    assert te2["master_hostname"] == "algo-3" and te2["is_master"] is False


def test_distribution_flag_puts_current_group_in_distribution(mlroot):
    mlroot.hyperparameters({"sagemaker_pytorch_ddp_enabled": True})
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    env = json.loads(r.stdout)["env"]
    assert env["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["homogeneousCluster"]'


def test_missing_config_files_mean_defaults(mlroot):
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 0, r.stderr
    env = seen(mlroot)["env"]
    host = socket.gethostname()
    assert env["SM_HOSTS"] == json.dumps([host]) and env["SM_CURRENT_HOST"] == host
    assert env["SM_HPS"] == "{}" and env["SM_CHANNELS"] == "[]"
    assert mlroot.success.exists() and mlroot.success.read_text() == ""
    assert not mlroot.failure.exists()


def test_failing_program_writes_failure_with_its_error(mlroot):
    mlroot.script("train.sh", """
        echo starting
        echo "ValueError: learning rate must be positive" >&2
        exit 3
    """)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"})
    assert r.returncode == 3
    text = mlroot.failure_text()
    assert text.startswith("ExecuteUserScriptError:\nExitCode 3\n")
    assert "ValueError: learning rate must be positive" in text
    assert 'Command "/bin/sh ' in text and "train.sh" in text
    assert "smhost INFO" not in text  # smhost's own log is not the program's error
    assert not mlroot.success.exists()
    assert len(text.encode()) <= 1024


def test_program_killed_by_signal_exits_128_plus_n(mlroot):
    mlroot.script("train.sh", "kill -SEGV $$\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"})
    assert r.returncode == 128 + 11
    assert "SIGSEGV" in mlroot.failure_text()


def test_script_written_failure_is_kept(mlroot):
    mlroot.script("train.sh", 'echo "my own reason" > "$SM_OUTPUT_DIR/failure"; exit 2\n')
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"})
    assert r.returncode == 2
    assert mlroot.failure_text() == "my own reason\n"


def test_executable_runs_directly(mlroot):
    mlroot.script("train", "#!/bin/sh\necho \"$0 $*\" > \"$SM_MODEL_DIR/out.txt\"\n")
    mlroot.hyperparameters({"x": 1})
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model/out.txt").read_text() == f"{mlroot.path}/code/train -x 1\n"


def test_sagemaker_program_hyperparameter_is_used(mlroot):
    mlroot.hyperparameters({"sagemaker_program": "go.sh"})
    mlroot.script("go.sh", 'touch "$SM_MODEL_DIR/ran"\n')
    r = run_smhost(["train"], mlroot=mlroot)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model/ran").exists()


def test_no_program_is_a_clear_user_error(mlroot):
    r = run_smhost(["train"], mlroot=mlroot)
    assert r.returncode == 66
    assert "SAGEMAKER_PROGRAM" in r.stderr
    assert "SAGEMAKER_PROGRAM" in mlroot.failure_text()


def test_missing_program_is_127_with_its_path(mlroot):
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "nope"})
    assert r.returncode == 127
    assert "nope" in mlroot.failure_text() and "not found" in mlroot.failure_text()


def test_not_executable_is_126(mlroot):
    mlroot.script("train", "#!/bin/sh\nexit 0\n", mode=0o644)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 126
    assert "chmod" in mlroot.failure_text()


@pytest.mark.parametrize("name,content,where", [
    ("hyperparameters.json", '{"a": "1",\n "b": }', "line 2 column 7"),
    ("inputdataconfig.json", "[1, 2]", "JSON object"),
    ("resourceconfig.json", '{"hosts": ["a"]}', "current_host"),
    ("resourceconfig.json", "", "Expecting value"),
])
def test_malformed_config_file_fails_cleanly(mlroot, name, content, where):
    (mlroot.path / "input/config" / name).write_text(content)
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 65, r.stderr
    text = mlroot.failure_text()
    assert name in text and where in text
    assert "Traceback" not in r.stderr


def test_unreadable_ml_root_output(mlroot, tmp_path):
    # An ML root whose output cannot be created: a file where the directory should be.
    (mlroot.path / "model").rmdir()
    (mlroot.path / "model").write_text("not a dir")
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 73
    assert "model" in r.stderr


def test_runner_override_to_missing_plugin(mlroot, tmp_path):
    ini = tmp_path / "smhost.ini"
    ini.write_text("[runners]\n.jl = julia\n")
    mlroot.script("train.jl", "println(1)\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.jl", "SMHOST_CONFIG": str(ini)})
    assert r.returncode == 78
    text = mlroot.failure_text()
    assert text.startswith("PluginError:")
    assert "'julia'" in text and "SMHOST_PLUGIN_PATH" in text


def test_malformed_config_is_a_clear_error(mlroot, tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[smhost]\nstop_grace_seconds = soon\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_CONFIG": str(ini)})
    assert r.returncode == 78
    assert "bad.ini:2" in r.stderr and "stop_grace_seconds" in r.stderr


def test_missing_named_config_is_an_error(mlroot, tmp_path):
    r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_CONFIG": str(tmp_path / "none.ini")})
    assert r.returncode == 78
    assert "none.ini" in r.stderr


def test_secrets_are_not_logged(mlroot):
    mlroot.hyperparameters({"api_key": "sk-verysecret", "db_password": "hunter2", "epochs": 1})
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train",
                                                  "AWS_SECRET_ACCESS_KEY": "abcd" * 10})
    assert r.returncode == 0, r.stderr
    assert "sk-verysecret" not in r.stderr and "hunter2" not in r.stderr
    assert "Training Env" in r.stderr
    # ... while the program itself gets them.
    assert seen(mlroot)["env"]["SM_HP_API_KEY"] == "sk-verysecret"


def test_log_level_from_hyperparameter_silences_startup_log(mlroot):
    mlroot.hyperparameters({"sagemaker_container_log_level": 40})
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 0
    assert "Training Env" not in r.stderr
    assert seen(mlroot)["env"]["SM_LOG_LEVEL"] == "40"


def test_env_command_prints_without_running(mlroot):
    mlroot.hyperparameters({"b": 2, "a": "x y"})
    mlroot.script("train.sh", 'touch "$SM_MODEL_DIR/ran"\n')
    r = run_smhost(["env"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"})
    assert r.returncode == 0
    assert "SM_HP_A=x y\n" in r.stdout and "SM_USER_ARGS=[\"-a\",\"x y\",\"-b\",\"2\"]" in r.stdout
    assert "# command: train.sh -a 'x y' -b 2" in r.stdout
    assert not (mlroot.path / "model/ran").exists()
    j = json.loads(run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"}).stdout)
    assert j["argv"] == ["train.sh", "-a", "x y", "-b", "2"]


def test_installed_as_train_via_argv0(mlroot):
    mlroot.script("train.sh", 'touch "$SM_MODEL_DIR/ran"\n')
    from conftest import base_env
    env = base_env(mlroot, SAGEMAKER_PROGRAM="train.sh")
    r = subprocess.run([str(SMHOST.parent / "train")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model/ran").exists()


def header_abi_text():
    """ "ABI <major>.<minor>" of the in-tree SDK header: what smhost --version and smhost plugins must show."""
    import re
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "include", "smhost", "plugin.h")).read()
    major = re.search(r"#define SMH_ABI_MAJOR (\d+)", text).group(1)
    minor = re.search(r"#define SMH_ABI_MINOR (\d+)", text).group(1)
    return f"ABI {major}.{minor}"


def test_usage_errors():
    r = run_smhost([])
    assert r.returncode == 64 and "usage" in r.stderr
    r = run_smhost(["frobnicate"])
    assert r.returncode == 64 and "frobnicate" in r.stderr
    r = run_smhost(["--help"])
    assert r.returncode == 0 and "train" in r.stdout and "serve" in r.stdout
    r = run_smhost(["--version"])
    assert r.returncode == 0 and header_abi_text() in r.stdout


def test_plugins_lists_builtin_runners():
    r = run_smhost(["plugins"])
    assert r.returncode == 0
    assert "shell" in r.stdout and "exec" in r.stdout and header_abi_text() in r.stdout
    j = json.loads(run_smhost(["plugins", "--json"]).stdout)
    names = {p["name"]: p for p in j}
    assert names["shell"]["status"] == "ok" and names["shell"]["kind"] == "runner"


def test_the_binary_needs_only_the_c_library():
    """Every shared library of the smhost binary costs each job's start-up; heavy ones belong in internal modules
    (README: "The binary links only the C library").  Sanitizer runtimes of the ASan build are allowed."""
    out = subprocess.run(["readelf", "-d", SMHOST], capture_output=True, text=True, check=True).stdout
    needed = [line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(NEEDED)" in line]
    assert "libc.so.6" in needed, out
    allowed = ("libc.so.6",)
    if any(n.startswith(("libasan.", "libubsan.")) for n in needed):  # the ASan build: its runtimes, and theirs
        allowed += ("libasan.", "libubsan.", "libm.so.", "libgcc_s.so.", "libstdc++.so.")
    other = [n for n in needed if not n.startswith(allowed)]
    assert other == [], other


def test_nul_in_a_hyperparameter_is_refused_not_truncated(mlroot):
    mlroot.hyperparameters({"x": "a\u0000b"})
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 65
    assert "NUL" in mlroot.failure_text() and "'x'" in mlroot.failure_text()
    assert not (mlroot.path / "model/seen.json").exists()


def _ini(tmp_path, text):
    p = tmp_path / "smhost.ini"
    p.write_text(text)
    return str(p)


def test_multi_host_job_fails_when_a_peer_never_resolves(mlroot, tmp_path):
    mlroot.resourceconfig(current_host="localhost", hosts=["localhost", "smhost-no-such-peer.invalid"])
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train",
                                                  "SMHOST_CONFIG": _ini(tmp_path, "[smhost]\ndns_timeout_seconds = 1\n")})
    assert r.returncode == 69
    assert "smhost-no-such-peer.invalid" in mlroot.failure_text()
    assert not (mlroot.path / "model/seen.json").exists()


def test_sigterm_during_the_dns_wait_stops_the_job_at_once(mlroot, tmp_path):
    import signal
    import time
    from conftest import start_smhost
    mlroot.resourceconfig(current_host="localhost", hosts=["localhost", "smhost-no-such-peer.invalid"])
    dump_env_script(mlroot)
    p = start_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train",
                                                    "SMHOST_CONFIG": _ini(tmp_path, "[smhost]\ndns_timeout_seconds = 600\n")})
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert p.returncode == 128 + signal.SIGTERM
    assert "waiting for host" in mlroot.failure_text()


def test_single_host_job_does_not_need_its_name_to_resolve(mlroot):
    mlroot.resourceconfig(current_host="smhost-unresolvable.invalid", hosts=["smhost-unresolvable.invalid"])
    dump_env_script(mlroot)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"}, timeout=20)
    assert r.returncode == 0, r.stderr


def test_submit_directory_tarball_is_unpacked_into_empty_code_dir(mlroot, tmp_path):
    import tarfile
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "run.sh").write_text('cp "$(dirname "$0")/pkg/data.txt" "$SM_MODEL_DIR/"\n')
    (src / "pkg" / "data.txt").write_text("payload\n")
    tgz = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(src / "run.sh", arcname="run.sh")
        t.add(src / "pkg", arcname="pkg")
    mlroot.hyperparameters({"sagemaker_submit_directory": str(tgz), "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model/data.txt").read_text() == "payload\n"
    assert seen_env_module_dir(mlroot) == str(tgz)


def seen_env_module_dir(mlroot):
    r = run_smhost(["env", "--json"], mlroot=mlroot)
    return json.loads(r.stdout)["env"]["SM_MODULE_DIR"]


def test_hostile_submit_tarball_is_refused(mlroot, tmp_path):
    import io
    import tarfile
    tgz = tmp_path / "evil.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        data = b"owned\n"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    mlroot.hyperparameters({"sagemaker_submit_directory": str(tgz), "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot)
    assert r.returncode != 0
    assert not (mlroot.path.parent / "escaped.txt").exists()
    assert "escaped.txt" in mlroot.failure_text() or ".." in mlroot.failure_text()
    assert list((mlroot.path / "code").iterdir()) == []


def test_missing_internal_module_is_a_clear_error(mlroot, tmp_path):
    # A copy of the binary without its lib/ tree: serve.so and unpack.so cannot be found.
    import shutil
    import tarfile
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(SMHOST, bindir / "smhost")
    tgz = tmp_path / "src.tar.gz"
    (tmp_path / "run.sh").write_text("exit 0\n")
    with tarfile.open(tgz, "w:gz") as t:
        t.add(tmp_path / "run.sh", arcname="run.sh")
    mlroot.hyperparameters({"sagemaker_submit_directory": str(tgz), "sagemaker_program": "run.sh"})
    from conftest import merged_env
    r = subprocess.run([str(bindir / "smhost"), "train"], env=merged_env(mlroot), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 70
    assert "internal module" in mlroot.failure_text() and "unpack.so" in mlroot.failure_text()
    r = subprocess.run([str(bindir / "smhost"), "serve"], env=merged_env(mlroot), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 70
    assert "serve.so" in r.stderr and "make install" in r.stderr
