"""`smhost local train/serve/invoke/transform`: SageMaker Local Mode without Docker (docs/local.md).

The config files are checked byte for byte against what the SageMaker Python SDK's Local Mode writes
(sagemaker/local/image.py: json.dump of the dicts below, hyperparameter values JSON-encoded)."""
import json
import os
import signal
import socket
import subprocess
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO, SMHOST
from local_util import cluster_unavailable, wait_until_hosts_print

REASON = cluster_unavailable()
needs_ns = pytest.mark.skipif(REASON is not None, reason=str(REASON))
IRIS = REPO / "samples" / "sklearn-iris"

# A program that reports what the host looks like, into the model and output/data directories.
CHECK = textwrap.dedent(
    """
    import json, os, socket, sys
    host = os.environ["SM_CURRENT_HOST"]
    cfg = "/opt/ml/input/config"
    report = {
        "hostname": socket.gethostname(),
        "files": {f: open(os.path.join(cfg, f)).read() for f in sorted(os.listdir(cfg))},
        "env": {k: os.environ.get(k) for k in ("TRAINING_JOB_NAME", "AWS_REGION", "SM_CHANNEL_TRAIN", "SM_MODEL_DIR",
                                                "SM_HOSTS", "MY_SETTING", "SAGEMAKER_BASE_DIR")},
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "hosts": {h: socket.gethostbyname(h) for h in json.loads(os.environ["SM_HOSTS"])},
    }
    train = "/opt/ml/input/data/train"
    st = os.stat(os.path.join(train, "data.csv"))
    report["data_inode"] = st.st_ino
    try:
        open(os.path.join(train, "new"), "w")
        report["channel_writable"] = True
    except OSError:
        report["channel_writable"] = False
    os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report-%s.json" % host), "w") as f:
        json.dump(report, f)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model-%s.txt" % host), "w") as f:
        f.write(host)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "w") as f:
        f.write("weights of " + host)
    if os.environ.get("FAIL_ON") == host:
        raise ValueError("learning rate must be positive")
    """
)


def local(*args, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run([str(SMHOST), "local"] + [str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture
def job(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "check.py").write_text(CHECK)
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("1,2,3\n")
    return tmp_path


def members(tgz):
    with tarfile.open(tgz) as t:
        return sorted(m.name for m in t.getmembers())


def read_member(tgz, name):
    with tarfile.open(tgz) as t:
        return t.extractfile(name).read().decode()


def hp_expected(job_name, region, extra):
    hp = dict(extra)
    hp.update({"sagemaker_program": json.dumps("check.py"), "sagemaker_submit_directory": json.dumps("/opt/ml/code"),
               "sagemaker_job_name": json.dumps(job_name), "sagemaker_region": json.dumps(region),
               "sagemaker_container_log_level": json.dumps(20)})
    return json.dumps(hp)


@needs_ns
def test_one_host_job_config_files_as_local_mode_writes_them(job):
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--channel", f"train={job / 'data'}",
              "--hyperparameter", "epochs=10", "--hyperparameter", "optimizer=adam", "--hyperparameter", "lr=0.1",
              "--hyperparameter", "layers=[64, 32]", "--hyperparameter", 'name="10"', "--env", "MY_SETTING=on",
              "--job-name", "job-1", "--region", "eu-west-1", "--output-path", job / "out", cwd=job)
    assert p.returncode == 0, p.stderr
    out = job / "out" / "job-1"
    report = json.loads(read_member(out / "output.tar.gz", "data/report-algo-1.json"))
    files = report["files"]
    assert sorted(files) == ["hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"]
    assert files["hyperparameters.json"] == hp_expected("job-1", "eu-west-1", {
        "epochs": "10", "optimizer": '"adam"', "lr": "0.1", "layers": "[64, 32]", "name": '"10"'})
    assert files["resourceconfig.json"] == json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
         "current_instance_type": "local"})
    assert files["inputdataconfig.json"] == json.dumps({"train": {"TrainingInputMode": "File"}})
    assert report["hostname"] == "algo-1"
    assert report["env"] == {"TRAINING_JOB_NAME": "job-1", "AWS_REGION": "eu-west-1",
                             "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train", "SM_MODEL_DIR": "/opt/ml/model",
                             "SM_HOSTS": '["algo-1"]', "MY_SETTING": "on", "SAGEMAKER_BASE_DIR": "/opt/ml"}
    assert report["argv"] == ["--epochs", "10", "--layers", "[64, 32]", "--lr", "0.1", "--name", "10",
                              "--optimizer", "adam"]
    assert report["cwd"] == "/opt/ml/code"
    # the channel is the user's own data, mounted read-only: same inode, not writable, nothing written
    assert report["data_inode"] == os.stat(job / "data" / "data.csv").st_ino
    assert report["channel_writable"] is False
    assert sorted(os.listdir(job / "data")) == ["data.csv"]
    # artifacts
    assert members(out / "model.tar.gz") == ["model-algo-1.txt", "weights.bin"]
    assert members(out / "output.tar.gz") == ["data", "data/report-algo-1.json"]
    assert "job job-1 completed" in p.stderr
    assert f"model:   {out / 'model.tar.gz'} (2 entries)" in p.stderr
    assert f"output:  {out / 'output.tar.gz'}" in p.stderr
    assert "algo-1 | " in p.stdout + p.stderr  # live logs carry the host


@needs_ns
def test_two_host_job_each_host_its_config_and_the_model_merge_order(job):
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    p = local("train", "--entry-point", job / "src" / "check.py", "--channel", f"train={job / 'data'}",
              "--instance-count", "2", "--instance-type", "ml.c5.xlarge", "--job-name", "two", "--output-path",
              job / "out", cwd=job, env=env)
    assert p.returncode == 0, p.stderr
    out = job / "out" / "two"
    for i in (1, 2):
        report = json.loads(read_member(out / "output.tar.gz", f"data/report-algo-{i}.json"))
        assert report["hostname"] == f"algo-{i}"
        assert report["files"]["resourceconfig.json"] == json.dumps(
            {"current_host": f"algo-{i}", "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0",
             "current_instance_type": "ml.c5.xlarge"})
        assert report["files"]["hyperparameters.json"] == hp_expected("two", "us-east-1", {})
        assert report["hosts"] == {"algo-1": "10.213.47.11", "algo-2": "10.213.47.12"}
    # model.tar.gz: the top-level entries of every host's model dir; the first host that writes a name wins
    assert members(out / "model.tar.gz") == ["model-algo-1.txt", "model-algo-2.txt", "weights.bin"]
    assert read_member(out / "model.tar.gz", "weights.bin") == "weights of algo-1"
    assert "weights.bin from algo-2 is left out" in p.stderr
    assert members(out / "output.tar.gz") == ["data", "data/report-algo-1.json", "data/report-algo-2.json"]
    assert "algo-1   exit code   0" in p.stderr and "algo-2   exit code   0" in p.stderr


@needs_ns
def test_a_failing_host_summary_exit_code_and_failure_file(job):
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--channel", f"train={job / 'data'}",
              "--instance-count", "2", "--env", "FAIL_ON=algo-2", "--job-name", "bad", "--output-path", job / "out",
              "--grace-seconds", "5")
    assert p.returncode == 1, p.stderr
    out = job / "out" / "bad"
    assert not (out / "model.tar.gz").exists()
    assert "failure" in members(out / "output.tar.gz")
    failure = read_member(out / "output.tar.gz", "failure")
    assert "ValueError: learning rate must be positive" in failure
    assert "job bad failed on algo-2 (exit code 1)" in p.stderr
    assert "algo-2   exit code   1" in p.stderr and "(failed first)" in p.stderr
    assert "failure: ExecuteUserScriptError:" in p.stderr
    assert "algo-2 | ValueError: learning rate must be positive" in p.stderr


@needs_ns
def test_ctrl_c_stops_every_host_gracefully_then_exits_130(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "slow.py").write_text(textwrap.dedent("""
        import os, signal, sys, time
        def stop(*_):
            open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "stopped-" + os.environ["SM_CURRENT_HOST"]), "w")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(120)
    """))
    proc = subprocess.Popen([str(SMHOST), "local", "train", "--entry-point", "slow.py", "--source-dir", str(src),
                             "--instance-count", "2", "--job-name", "stopme", "--output-path", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_hosts_print(proc, "ready", 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "job stopme stopped by SIGINT (exit code 130)" in err
    assert members(tmp_path / "out" / "stopme" / "output.tar.gz") == ["data", "data/stopped-algo-1",
                                                                      "data/stopped-algo-2"]


@needs_ns
def test_job_file_with_options_winning(job):
    spec = {"entry_point": "check.py", "source_dir": str(job / "src"), "hyperparameters": {"epochs": 5, "opt": "sgd"},
            "channels": {"train": {"path": str(job / "data"), "content_type": "text/csv"}},
            "instance_count": 1, "environment": {"MY_SETTING": "from-file"}, "job_name": "from-file",
            "output_path": str(job / "out"), "region": "ap-south-1"}
    (job / "job.json").write_text(json.dumps(spec))
    p = local("train", "--job", job / "job.json", "--job-name", "from-cli", "--hyperparameter", "epochs=7")
    assert p.returncode == 0, p.stderr
    report = json.loads(read_member(job / "out" / "from-cli" / "output.tar.gz", "data/report-algo-1.json"))
    assert json.loads(report["files"]["hyperparameters.json"])["epochs"] == "7"
    assert json.loads(report["files"]["hyperparameters.json"])["opt"] == '"sgd"'
    assert report["files"]["inputdataconfig.json"] == json.dumps(
        {"train": {"TrainingInputMode": "File", "ContentType": "text/csv"}})
    assert report["env"]["MY_SETTING"] == "from-file" and report["env"]["AWS_REGION"] == "ap-south-1"
    (job / "bad.json").write_text(json.dumps({"entry_pont": "x.py"}))
    p = local("train", "--job", job / "bad.json")
    assert p.returncode == 65 and 'unknown field "entry_pont"' in p.stderr


def test_train_usage_errors(job):
    p = local("train")
    assert p.returncode == 64 and "--entry-point is required" in p.stderr
    p = local("train", "--entry-point", "nope.py", "--source-dir", job / "src")
    assert p.returncode == 66 and "no such file in --source-dir" in p.stderr
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--instance-type", "gpu")
    assert p.returncode == 64 and "expected local, local_gpu or ml.*" in p.stderr
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--job-name", "bad_name")
    assert p.returncode == 64 and "--job-name 'bad_name'" in p.stderr
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--channel", "train=/no/such/dir")
    assert p.returncode == 66 and "channel train" in p.stderr
    (job / "out" / "taken").mkdir(parents=True)
    (job / "out" / "taken" / "model.tar.gz").write_text("")
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src", "--job-name", "taken",
              "--output-path", job / "out")
    assert p.returncode == 73 and "already holds the artifacts" in p.stderr
    p = local("train", "--help")
    assert p.returncode == 0 and "--instance-count" in p.stdout


@needs_ns
def test_train_as_a_normal_user_through_user_namespaces():
    reason = cluster_unavailable(user=65534)
    if reason:
        print("skipped:", reason)
        pytest.skip(reason)
    d = Path(tempfile.mkdtemp(prefix="smhost-test-"))
    try:
        d.chmod(0o777)
        (d / "src").mkdir()
        (d / "src" / "check.py").write_text(CHECK)
        (d / "data").mkdir()
        (d / "data" / "data.csv").write_text("1\n")
        for p in d.rglob("*"):
            p.chmod(0o777 if p.is_dir() else 0o644)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SMHOST), "local",
                            "train", "--entry-point", "check.py", "--source-dir", str(d / "src"), "--channel",
                            f"train={d / 'data'}", "--instance-count", "2", "--job-name", "user",
                            "--output-path", str(d / "out")],
                           capture_output=True, text=True, timeout=300, cwd=d, env=dict(os.environ, TMPDIR=str(d)))
        assert p.returncode == 0, p.stderr
        out = d / "out" / "user"
        assert os.stat(out / "model.tar.gz").st_uid == 65534  # the user's own files outside
        report = json.loads(read_member(out / "output.tar.gz", "data/report-algo-2.json"))
        assert report["hostname"] == "algo-2" and report["channel_writable"] is False
    finally:
        subprocess.run(["rm", "-rf", str(d)])


# ---- serving -----------------------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    """The sklearn-iris sample trained with smhost local train: its model.tar.gz in a folder of its own."""
    if REASON is not None:
        pytest.skip(REASON)
    d = tmp_path_factory.mktemp("iris")
    p = local("train", "--entry-point", "train.py", "--source-dir", IRIS / "ml" / "code", "--channel",
              f"train={IRIS / 'ml' / 'input' / 'data' / 'train'}", "--hyperparameter", "n-estimators=20",
              "--job-name", "iris", "--output-path", d)
    assert p.returncode == 0, p.stderr
    assert members(d / "iris" / "model.tar.gz") == ["code", "code/inference.py", "model.joblib"]
    assert members(d / "iris" / "output.tar.gz") == ["data", "data/metrics.json"]
    return d / "iris" / "model.tar.gz"


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture
def server(iris_model):
    port = free_port()
    before = snapshot(iris_model.parent)
    proc = subprocess.Popen([str(SMHOST), "local", "serve", "--model", str(iris_model), "--port", str(port),
                             "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url == f"http://127.0.0.1:{port}", proc.stderr.read() if not url else url
    yield port
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # the model's folder is exactly as it was: nothing unpacked next to model.tar.gz
    assert snapshot(iris_model.parent) == before


def test_serve_invoke_a_csv_request(server):
    p = local("invoke", "--port", server, "--content-type", "text/csv", "--accept", "application/json",
              IRIS / "request.csv")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == ["setosa", "virginica", "versicolor"]
    # body on stdin
    p = local("invoke", "--url", f"http://127.0.0.1:{server}/", "--content-type", "text/csv",
              input="5.1,3.5,1.4,0.2\n")
    assert p.returncode == 0 and json.loads(p.stdout) == ["setosa"]


def test_invoke_4xx_and_5xx_exit_codes(server):
    p = local("invoke", "--port", server, "--content-type", "application/x-unknown", input="x")
    assert p.returncode == 4
    assert p.stdout == ""
    assert p.stderr.startswith("smhost local invoke: HTTP 415 Unsupported Media Type: ")
    assert "application/x-unknown" in p.stderr
    # a body the codec cannot read is the client's mistake: 400 (issue 13), so exit 4
    p = local("invoke", "--port", server, "--content-type", "application/json", input='{"broken')
    assert p.returncode == 4 and "HTTP 400" in p.stderr
    # valid JSON the model cannot use (2 features instead of 4): the handler fails, 500, exit 5
    p = local("invoke", "--port", server, "--content-type", "application/json", input="[[1, 2]]")
    assert p.returncode == 5 and "HTTP 500" in p.stderr


def test_invoke_without_a_server():
    p = local("invoke", "--port", free_port(), input="x")
    assert p.returncode == 69 and "Is the server running" in p.stderr


def test_transform_line_split_multi_record_against_a_running_server(server, tmp_path):
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    (inp / "a.csv").write_text((IRIS / "request.csv").read_text())
    (inp / "sub" / "b.csv").write_text("6.7,3.0,5.2,2.3\n\n5.1,3.5,1.4,0.2")
    p = local("transform", "--port", server, "--input", inp, "--output", tmp_path / "out", "--split-type", "Line",
              "--strategy", "MultiRecord", "--content-type", "text/csv", "--accept", "text/csv")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "a.csv.out").read_text() == "setosa\nvirginica\nversicolor\n"
    assert (tmp_path / "out" / "sub" / "b.csv.out").read_text() == "virginica\nsetosa\n"
    assert "split Line, MultiRecord" in p.stderr


def test_transform_single_record_both_spellings_and_execution_parameters(server, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.csv").write_text((IRIS / "request.csv").read_text())
    for strategy, out in (("SingleRecord", "o1"), ("SINGLE_RECORD", "o2")):
        p = local("transform", "--port", server, "--input", inp, "--output", tmp_path / out, "--split-type", "Line",
                  "--strategy", strategy, "--accept", "application/json")
        assert p.returncode == 0, p.stderr
        assert (tmp_path / out / "a.csv.out").read_text() == '["setosa"]\n["virginica"]\n["versicolor"]\n'
    # no --strategy: the server's /execution-parameters (MULTI_RECORD) decides
    p = local("transform", "--port", server, "--input", inp / "a.csv", "--output", tmp_path / "o3", "--split-type",
              "Line", "--accept", "text/csv")
    assert p.returncode == 0, p.stderr
    assert "MultiRecord, max payload 6 MB" in p.stderr
    assert (tmp_path / "o3" / "a.csv.out").read_text() == "setosa\nvirginica\nversicolor\n"


def test_transform_refuses_a_record_over_the_payload_limit(server, tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "big.csv").write_text("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n" + "1," * 600000 + "1\n")
    p = local("transform", "--port", server, "--input", inp, "--output", tmp_path / "out", "--split-type", "Line",
              "--max-payload-mb", "1", "--content-type", "text/csv")
    assert p.returncode == 65
    assert "big.csv: record 3 is 1200001 bytes, over the payload limit of 1 MB" in p.stderr
    assert not (tmp_path / "out" / "big.csv.out").exists()
    p = local("transform", "--port", server, "--input", inp, "--output", tmp_path / "out", "--max-payload-mb", "1")
    assert p.returncode == 65 and "big.csv: record 1 is" in p.stderr


def test_transform_with_its_own_server_from_a_model_directory(iris_model, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(iris_model) as t:
        t.extractall(model_dir)
    before = snapshot(model_dir)
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "req.csv").write_text((IRIS / "request.csv").read_text())
    p = local("transform", "--model", model_dir, "--input", inp, "--output", tmp_path / "out", "--split-type",
              "Line", "--strategy", "MultiRecord", "--accept", "application/json",
              env=dict(os.environ, SAGEMAKER_MODEL_SERVER_WORKERS="1"))
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "out" / "req.csv.out").read_text()) == ["setosa", "virginica", "versicolor"]
    assert snapshot(model_dir) == before


def test_serve_and_transform_usage_errors(tmp_path):
    p = local("serve")
    assert p.returncode == 64 and "--model PATH is required" in p.stderr
    p = local("serve", "--model", tmp_path / "nope.tar.gz", "--port", free_port())
    assert p.returncode == 66 and "nope.tar.gz" in p.stderr
    p = local("transform", "--input", tmp_path, "--output", tmp_path / "o", "--strategy", "Batch")
    assert p.returncode == 64 and "expected SingleRecord or MultiRecord" in p.stderr
    p = local("transform", "--input", tmp_path, "--output", tmp_path / "o", "--split-type", "RecordIO")
    assert p.returncode == 64
    p = local("nope")
    assert p.returncode == 64 and "unknown command" in p.stderr
    p = local("--help")
    assert p.returncode == 0
    assert [line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")] == [
        "train", "serve", "invoke", "transform", "cluster"]
    p = subprocess.run([str(SMHOST), "--help"], capture_output=True, text=True)
    assert "  local COMMAND  SageMaker Local Mode without Docker" in p.stdout


FALLBACK = textwrap.dedent(
    """
    import json, os
    root = os.environ["SAGEMAKER_BASE_DIR"]
    out = {"root": root, "host": os.environ["SM_CURRENT_HOST"], "module_dir": os.environ["SM_MODULE_DIR"],
           "data": open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read()}
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "fallback.json"), "w") as f:
        json.dump(out, f)
    """
)


def test_one_host_without_namespaces_runs_as_a_plain_process(job):
    (job / "src" / "fb.py").write_text(FALLBACK)
    p = local("train", "--entry-point", "fb.py", "--source-dir", job / "src", "--channel", f"train={job / 'data'}",
              "--job-name", "plain", "--output-path", job / "out", env=dict(os.environ, SMHOST_LOCAL_NAMESPACES="0",
                                                                            TMPDIR=str(job)))
    assert p.returncode == 0, p.stderr
    assert "runs as a plain process" in p.stderr
    got = json.loads(read_member(job / "out" / "plain" / "model.tar.gz", "fallback.json"))
    assert got["root"].startswith(str(job / "smhost-local-")) and got["root"].endswith("/algo-1")
    assert got["host"] == "algo-1" and got["module_dir"] == got["root"] + "/code" and got["data"] == "1,2,3\n"
    # the run directory is gone, the user's files are untouched
    assert [d for d in os.listdir(job) if d.startswith("smhost-local-")] == []
    assert sorted(os.listdir(job / "data")) == ["data.csv"] and sorted(os.listdir(job / "src")) == ["check.py", "fb.py"]
    p = local("train", "--entry-point", "fb.py", "--source-dir", job / "src", "--instance-count", "2",
              "--job-name", "plain2", "--output-path", job / "out", env=dict(os.environ, SMHOST_LOCAL_NAMESPACES="0"))
    assert p.returncode == 69 and "2 hosts cannot be simulated here" in p.stderr


@needs_ns
def test_source_tarball_and_a_single_file_channel(job):
    with tarfile.open(job / "src.tar.gz", "w:gz") as t:
        t.add(job / "src" / "check.py", arcname="check.py")
    p = local("train", "--entry-point", "check.py", "--source-dir", job / "src.tar.gz", "--channel",
              f"train={job / 'data' / 'data.csv'}", "--job-name", "tgz", "--output-path", job / "out")
    assert p.returncode == 0, p.stderr
    report = json.loads(read_member(job / "out" / "tgz" / "output.tar.gz", "data/report-algo-1.json"))
    assert report["data_inode"] == os.stat(job / "data" / "data.csv").st_ino
    assert report["cwd"] == "/opt/ml/code"
    p = local("train", "--entry-point", "other.py", "--source-dir", job / "src.tar.gz", "--job-name", "tgz2",
              "--output-path", job / "out")
    assert p.returncode == 66 and "no such file in" in p.stderr


@needs_ns
def test_hosts_have_their_own_dev_shm_and_proc(tmp_path):
    p = subprocess.run([str(SMHOST), "local", "cluster", "--hosts", "2", "--", "sh", "-c",
                        'touch /dev/shm/smhost-test-$SMHOST_LOCAL_HOST; ls /dev/shm | grep -c smhost-test-; '
                        'echo pid1=$(cat /proc/1/comm)'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "algo-1 | 1" in p.stdout and "algo-2 | 1" in p.stdout
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("smhost-test-")]
    if "own: " not in p.stderr:  # /proc is the host's own where the kernel allows mounting it
        assert "algo-1 | pid1=smhost" in p.stdout


def test_transform_ctrl_c_stops_the_request_and_its_server(tmp_path):
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text(textwrap.dedent("""
        import time
        def model_fn(model_dir):
            return None
        def predict_fn(data, model):
            time.sleep(60)
            return data
    """))
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.csv").write_text("1,2\n")
    proc = subprocess.Popen([str(SMHOST), "local", "transform", "--model", str(model), "--input", str(inp),
                             "--output", str(tmp_path / "out"), "--content-type", "text/csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SAGEMAKER_MODEL_SERVER_WORKERS="1", SMHOST_SERVE_GRACE_SECONDS="2"))
    lines = []
    while True:
        line = proc.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)
        if "POST /invocations" in line or "file(s), split" in line:
            break
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + err
    assert time.monotonic() - t0 < 15  # the request is abandoned at once; the server's grace is 2 s
    assert "interrupted" in err
    assert not (tmp_path / "out" / "a.csv.out").exists()
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_serve_a_model_directory_with_the_code_from_source_dir(iris_model, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(iris_model) as t:
        t.extract("model.joblib", model_dir)
    before, code_before = snapshot(model_dir), snapshot(IRIS / "ml" / "code")
    port = free_port()
    proc = subprocess.Popen([str(SMHOST), "local", "serve", "--model", str(model_dir), "--source-dir",
                             str(IRIS / "ml" / "code"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SAGEMAKER_MODEL_SERVER_WORKERS="1"))
    try:
        assert proc.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        p = local("invoke", "--port", port, "--content-type", "text/csv", "--custom-attributes", "trace=1",
                  IRIS / "request.csv")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == ["setosa", "virginica", "versicolor"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert snapshot(model_dir) == before and snapshot(IRIS / "ml" / "code") == code_before


def test_serve_refuses_a_port_in_use(tmp_path):
    (tmp_path / "model").mkdir()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        p = local("serve", "--model", tmp_path / "model", "--port", port, timeout=60)
    finally:
        s.close()
    assert p.returncode == 71
    assert f"port {port} on 127.0.0.1 is in use" in p.stderr


def machine_ip():
    """A non-loopback address of this machine (a UDP 'connect' sends nothing), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_serve_listens_on_loopback_only(server):
    ip = machine_ip()
    if not ip:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, server), timeout=5).close()
    socket.create_connection(("127.0.0.1", server), timeout=5).close()


@needs_ns
def test_source_dir_from_s3_is_downloaded_outside_the_hosts(job, s3srv):
    with tarfile.open(job / "src.tar.gz", "w:gz") as t:
        t.add(job / "src" / "check.py", arcname="check.py")
    s3srv.curl("PUT", "/bkt/jobs/src.tar.gz", data_file=str(job / "src.tar.gz"))
    env = dict(os.environ, S3_ENDPOINT_URL=s3srv.endpoint, AWS_ACCESS_KEY_ID=s3srv.access_key,
               AWS_SECRET_ACCESS_KEY=s3srv.secret_key, AWS_EC2_METADATA_DISABLED="true")
    p = local("train", "--entry-point", "check.py", "--source-dir", "s3://bkt/jobs/src.tar.gz", "--channel",
              f"train={job / 'data'}", "--instance-count", "2", "--job-name", "froms3", "--region", "us-east-1",
              "--output-path", job / "out", env=env)
    assert p.returncode == 0, p.stderr
    assert s3srv.secret_key not in p.stdout + p.stderr
    report = json.loads(read_member(job / "out" / "froms3" / "output.tar.gz", "data/report-algo-2.json"))
    # hyperparameters.json names the S3 code as Local Mode writes it; the hosts (no network) find it in /opt/ml/code
    hps = json.loads(report["files"]["hyperparameters.json"])
    assert hps["sagemaker_submit_directory"] == json.dumps("s3://bkt/jobs/src.tar.gz")
    assert report["cwd"] == "/opt/ml/code"
    p = local("train", "--entry-point", "check.py", "--source-dir", "s3://bkt/jobs/missing.tar.gz", "--job-name",
              "nos3", "--region", "us-east-1", "--output-path", job / "out", env=env)
    assert p.returncode != 0 and "missing.tar.gz" in p.stderr
