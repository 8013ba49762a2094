"""`smhost train` with hostile hyperparameters (issue 13, defect 7): building the environment is O(n log n), and
an environment the kernel cannot take fails before the program starts, naming the limit and the size."""
import json
import os
import time

import pytest

from conftest import SANITIZED, dump_env_script, run_smhost, seen


def test_40k_hyperparameters_fail_fast_with_the_exec_limit_named(mlroot):
    dump_env_script(mlroot)
    mlroot.hyperparameters({f"key{i:06d}": f"v{i}" for i in range(40000)})
    t0 = time.time()
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"}, timeout=60)
    took = time.time() - t0
    assert r.returncode == 126, r.stderr[-2000:]
    msg = mlroot.failure_text()
    assert "MAX_ARG_STRLEN" in msg and "E2BIG" in msg and "bytes" in msg, msg
    assert not (mlroot.path / "model" / "seen.json").exists()
    if not SANITIZED:  # was 11 s: a scan of the environment per variable, and a scan of the dict per key
        assert took < 1.5, f"{took:.2f} s"


def test_thousands_of_hyperparameters_reach_the_program(mlroot):
    dump_env_script(mlroot)
    hps = {f"key{i:05d}": i for i in range(3000)}
    hps["a-b"] = "first"
    hps["a_b"] = "second"  # both become SM_HP_A_B: the later one wins, as one variable
    mlroot.hyperparameters(hps)
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"}, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    env = seen(mlroot)["env"]
    assert env["SM_HP_KEY02999"] == "2999" and env["SM_HP_KEY00000"] == "0"
    assert len(json.loads(env["SM_HPS"])) == 3002
    assert env["SM_HP_A_B"] == "second"


# ---- defect 8: a missing program is 127 for every kind; a run does not inherit the previous outcome ----------
@pytest.mark.parametrize("program", ["missing.sh", "missing.py", "missing"])
def test_missing_program_is_127_whatever_its_kind(mlroot, program):
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": program}, timeout=60)
    assert r.returncode == 127, r.stderr[-2000:]
    text = mlroot.failure_text()
    assert text.startswith("UserError") and program in text and "not found" in text, text


def test_previous_success_and_failure_are_cleared_at_start(mlroot):
    out = mlroot.path / "output"
    (out / "failure").write_text("AlgorithmError: the reason of an old run")
    (out / "success").write_text("")
    mlroot.script("ok.sh", "exit 0\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "ok.sh"}, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "success").exists() and not (out / "failure").exists()
    mlroot.script("bad.sh", "echo new-reason >&2; exit 3\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "bad.sh"}, timeout=60)
    assert r.returncode == 3
    assert not (out / "success").exists()
    assert "old run" not in mlroot.failure_text() and "new-reason" in mlroot.failure_text()


def test_full_disk_leaves_no_empty_failure_file(mlroot, tmp_path):
    import subprocess
    out = mlroot.path / "output"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {r.stderr.strip()}")
    try:
        filler = out / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill it to the last byte
        try:
            while True:
                os.write(fd, b"x" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        mlroot.script("bad.sh", "echo the-reason >&2; exit 3\n")
        r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "bad.sh"}, timeout=60)
        assert r.returncode == 3
        assert not (out / "failure").exists(), "an empty failure file was left"
        assert not [p.name for p in out.iterdir() if "failure" in p.name]  # no temporary file either
        assert "cannot write" in r.stderr and "the-reason" in r.stderr.split("cannot write", 1)[1]
    finally:
        subprocess.run(["umount", str(out)])


def test_a_key_with_equals_gets_an_environment_name_without_it(mlroot):
    # found by tests/fuzz/fuzz_hyperparameters: SM_HP_A=B=1 is read as SM_HP_A with the value "B=1"
    dump_env_script(mlroot)
    mlroot.hyperparameters({"a=b": 1, "a": 2})
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train"}, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    env = seen(mlroot)["env"]
    assert env["SM_HP_A_B"] == "1" and env["SM_HP_A"] == "2"
    assert not [k for k in env if "=" in k]
