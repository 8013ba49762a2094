"""Black-box tests of smhost's PID-1 duties: signals, grace periods, reaping, exit codes, OOM, the failure file."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SMHOST, TEST_PLUGIN_DIR, base_env, run_smhost, start_smhost


def write_ini(tmp_path, **keys):
    p = tmp_path / "smhost.ini"
    p.write_text("[smhost]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return str(p)


def train(mlroot, program, env=None, **kw):
    e = {"SAGEMAKER_PROGRAM": program}
    e.update(env or {})
    return run_smhost(["train"], mlroot=mlroot, env=e, **kw)


def start_train(mlroot, program, env=None, **kw):
    e = {"SAGEMAKER_PROGRAM": program}
    e.update(env or {})
    return start_smhost(["train"], mlroot=mlroot, env=e, **kw)


def wait_for(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"smhost exited ({proc.returncode}) before {path} appeared:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} never appeared")
        time.sleep(0.01)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- exit codes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 99, 128, 200, 254, 255])
def test_exit_code_is_the_programs(mlroot, code):
    mlroot.script("train.sh", f"echo out; exit {code}\n")
    r = train(mlroot, "train.sh")
    assert r.returncode == code, r.stderr
    assert "out\n" in r.stdout
    if code == 0:
        assert mlroot.success.exists() and not mlroot.failure.exists()
    else:
        assert not mlroot.success.exists()
        text = mlroot.failure_text()
        assert text.startswith(f"ExecuteUserScriptError:\nExitCode {code}\n"), text
        assert 'Command "/bin/sh ' in text


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL, signal.SIGABRT, signal.SIGBUS])
def test_killed_by_signal_exits_128_plus_n(mlroot, sig):
    mlroot.script("train.sh", f"kill -{int(sig)} $$; sleep 5\n")
    r = train(mlroot, "train.sh")
    assert r.returncode == 128 + sig, r.stderr
    text = mlroot.failure_text()
    assert f"ExitCode {128 + sig}\n" in text
    assert f"Signal {sig.name} (" in text and "killed the program" in text


def test_exec_failures_127_and_126(mlroot):
    # an interpreter that does not exist -> 127
    mlroot.script("prog", "#!/nonexistent/interpreter\n")
    r = train(mlroot, "prog")
    assert r.returncode == 127, r.stderr
    assert "ExitCode 127" in mlroot.failure_text()
    # a program that cannot be executed (no execute bit, not a known kind) -> 126
    mlroot.failure.unlink()
    mlroot.script("prog2", "#!/bin/sh\nexit 0\n", mode=0o644)
    r = train(mlroot, "prog2")
    assert r.returncode == 126, r.stderr
    assert mlroot.failure_text().startswith("ExecuteUserScriptError:\nExitCode 126\n")


# ---- signal state and stdin -------------------------------------------------------------------------------


def test_program_gets_clean_signal_mask_and_dispositions(mlroot):
    mlroot.script("train.sh", 'exec grep -E "^Sig(Blk|Ign):" /proc/self/status > "$SM_MODEL_DIR/sig"\n')
    r = train(mlroot, "train.sh")
    assert r.returncode == 0, r.stderr
    sig = (mlroot.path / "model" / "sig").read_text()
    assert "SigBlk:\t0000000000000000" in sig
    assert "SigIgn:\t0000000000000000" in sig


def test_program_runs_in_its_own_process_group(mlroot):
    mlroot.script("train.sh", 'ps -o pgid= -p $$ > "$SM_MODEL_DIR/pgid"; echo $$ > "$SM_MODEL_DIR/pid"\n')
    p = start_train(mlroot, "train.sh")
    p.communicate(timeout=30)
    assert p.returncode == 0
    pgid = int((mlroot.path / "model" / "pgid").read_text())
    assert pgid != os.getpgid(0)
    assert pgid != p.pid  # not smhost's group either


def test_stdin_closed(mlroot):
    mlroot.script("train.sh", 'cat; echo "stdin ok $?"; echo "RuntimeError: late" >&2; exit 5\n')
    p = start_train(mlroot, "train.sh", stdin=None, preexec_fn=lambda: os.close(0))
    out, err = p.communicate(timeout=30)
    assert p.returncode == 5, err
    assert "stdin ok 0" in out
    assert 'ErrorMessage "RuntimeError: late' in mlroot.failure_text()


# ---- stop: SIGTERM and the grace period -----------------------------------------------------------------


def test_sigterm_with_handler_that_checkpoints_counts_as_stopped(mlroot):
    mlroot.script(
        "train",
        """
        #!/usr/bin/python3
        import os, signal, sys, time
        model = os.environ["SM_MODEL_DIR"]
        def stop(signum, frame):
            for i in range(3):
                with open(os.path.join(model, f"checkpoint-{i}.bin"), "wb") as f:
                    f.write(os.urandom(1 << 16))
            print("checkpoint saved", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        open(os.path.join(model, "ready"), "w").close()
        while True:
            time.sleep(0.05)
        """,
    )
    p = start_train(mlroot, "train")
    wait_for(mlroot.path / "model" / "ready", p)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "checkpoint saved" in out
    for i in range(3):
        assert (mlroot.path / "model" / f"checkpoint-{i}.bin").stat().st_size == 1 << 16
    assert not mlroot.success.exists()
    text = mlroot.failure_text()
    assert text.startswith("JobStopped:\nStopped by SIGTERM"), text
    assert "exited within the 110 s grace period" in text
    assert "ExitCode 0\n" in text


def test_sigterm_without_handler(mlroot):
    mlroot.script("train.sh", 'touch "$SM_MODEL_DIR/ready"; exec sleep 100\n')
    p = start_train(mlroot, "train.sh")
    wait_for(mlroot.path / "model" / "ready", p)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM, err
    text = mlroot.failure_text()
    assert text.startswith("JobStopped:\nStopped by SIGTERM"), text
    assert "exited within the 110 s grace period\nExitCode 143" in text


@pytest.mark.slow
def test_program_ignoring_sigterm_is_killed_after_grace(mlroot, tmp_path):
    mlroot.script("train.sh", 'trap "" TERM; touch "$SM_MODEL_DIR/ready"; while :; do sleep 0.1; done\n')
    ini = write_ini(tmp_path, stop_grace_seconds=2)
    p = start_train(mlroot, "train.sh", env={"SMHOST_CONFIG": ini})
    wait_for(mlroot.path / "model" / "ready", p)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    took = time.monotonic() - t0
    assert p.returncode == 137, err
    assert took >= 1.9
    text = mlroot.failure_text()
    assert "did not exit within the 2 s grace period and was killed with SIGKILL\nExitCode 137" in text


def test_sigint_and_sigusr1_are_forwarded(mlroot):
    mlroot.script(
        "train.sh",
        """
        trap 'echo got-usr1' USR1
        trap 'echo got-int; exit 9' INT
        touch "$SM_MODEL_DIR/ready"
        while :; do sleep 0.05; done
        """,
    )
    p = start_train(mlroot, "train.sh")
    wait_for(mlroot.path / "model" / "ready", p)
    p.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 9, err
    assert "got-usr1" in out and "got-int" in out
    assert "Stopped by SIGINT" in mlroot.failure_text()


def test_max_run_seconds(mlroot, tmp_path):
    mlroot.script("train.sh", "exec sleep 60\n")
    ini = write_ini(tmp_path, max_run_seconds=1, stop_grace_seconds=5)
    t0 = time.monotonic()
    r = train(mlroot, "train.sh", env={"SMHOST_CONFIG": ini})
    assert time.monotonic() - t0 < 10
    assert r.returncode == 143, r.stderr
    text = mlroot.failure_text()
    assert text.startswith("MaxRunTimeExceeded:\n"), text
    assert "max_run_seconds" in text


# ---- leftovers, orphans, daemons --------------------------------------------------------------------------


def test_grandchildren_and_daemons_do_not_survive(mlroot):
    mlroot.script(
        "train.sh",
        """
        sleep 1000 &
        echo $! > "$SM_MODEL_DIR/bg"
        # a double-forked daemon in its own session that also ignores SIGTERM
        (setsid sh -c 'trap "" TERM; echo $$ > "$SM_MODEL_DIR/daemon.tmp"; mv "$SM_MODEL_DIR/daemon.tmp" "$SM_MODEL_DIR/daemon"; exec sleep 1000' &)
        while [ ! -s "$SM_MODEL_DIR/daemon" ]; do sleep 0.01; done
        echo done
        """,
    )
    r = train(mlroot, "train.sh", timeout=30)
    assert r.returncode == 0, r.stderr
    bg = int((mlroot.path / "model" / "bg").read_text())
    daemon = int((mlroot.path / "model" / "daemon").read_text())
    for pid in (bg, daemon):
        assert not alive(pid), f"process {pid} outlived the job"
        ps = subprocess.run(["ps", "-o", "pid=,stat=", "-p", str(pid)], capture_output=True, text=True)
        assert ps.stdout.strip() == "", f"ps still lists {pid}: {ps.stdout}"
    assert mlroot.success.exists()


def children(ppid):
    """{pid: state letter} of every process whose parent is ppid, read from /proc (no ps: a ps that prints
    nothing must not pass for "no zombies")."""
    kids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        state, parent = stat[stat.rindex(")") + 2:].split()[:2]
        if int(parent) == ppid:
            kids[int(d.name)] = state
    return kids


def test_zombies_are_reaped_while_the_program_runs(mlroot):
    # the program's children exit while it keeps running; orphans of a double fork become smhost's to reap
    mlroot.script(
        "train.sh",
        """
        echo $$ > "$SM_MODEL_DIR/job"
        for i in 1 2 3 4 5; do (sh -c 'echo $$ >> "$SM_MODEL_DIR/orphans"; exit 0' &) ; done
        sleep 0.5
        touch "$SM_MODEL_DIR/ready"
        sleep 100
        """,
    )
    p = start_train(mlroot, "train.sh")
    wait_for(mlroot.path / "model" / "ready", p)
    time.sleep(0.2)
    kids = children(p.pid)
    orphans = [int(x) for x in (mlroot.path / "model" / "orphans").read_text().split()]
    left = [pid for pid in orphans if Path(f"/proc/{pid}").exists()]  # a zombie still has its /proc entry
    job = int((mlroot.path / "model" / "job").read_text())
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    # the scan must see the job process itself, or it proves nothing about zombies
    assert kids.get(job) in ("S", "R"), f"the job process {job} is not among smhost's children {kids}"
    assert [pid for pid, st in kids.items() if st == "Z"] == [], kids
    assert len(orphans) == 5 and left == [], f"orphans {orphans}: not reaped {left}"


# ---- output ------------------------------------------------------------------------------------------------


def test_stdout_and_stderr_pass_through_whole_lines(mlroot):
    mlroot.script(
        "train",
        """
        #!/usr/bin/python3
        import os, sys
        for i in range(20000):
            os.write(1, b"out %06d %s\\n" % (i, b"o" * 50))
            os.write(2, b"err %06d %s\\n" % (i, b"e" * 50))
        """,
    )
    r = train(mlroot, "train")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["out %06d %s" % (i, "o" * 50) for i in range(20000)]
    errs = [l for l in r.stderr.splitlines() if l.startswith("err ")]
    assert errs == ["err %06d %s" % (i, "e" * 50) for i in range(20000)]


def test_failure_message_from_stderr_tail_long_lines_and_invalid_utf8(mlroot):
    mlroot.script(
        "train",
        r"""
        #!/usr/bin/python3
        import os
        os.write(2, b"x" * 300000 + b"\n")
        os.write(2, b"bad bytes \xff\xfe\xc3( here\n")
        os.write(2, "Traceback (most recent call last):\n  File \"train\", line 7, in <module>\n".encode())
        os.write(2, "ValueError: learning rate must be positive: \u20ac\u20ac\n".encode())
        os.write(2, b"\xf0\x9f\x98\x80" * 400 + b"\n")
        raise SystemExit(3)
        """,
    )
    r = train(mlroot, "train")
    assert r.returncode == 3
    raw = mlroot.failure.read_bytes()
    assert len(raw) <= 1024
    text = raw.decode("utf-8")  # valid UTF-8, or this raises
    assert 'ErrorMessage "ValueError: learning rate must be positive: \u20ac\u20ac\n' in text
    assert text.endswith('Command "%s"\n' % (mlroot.path / "code" / "train"))


def test_failure_file_redacts_secrets(mlroot):
    mlroot.script(
        "train.sh",
        """
        echo "using AKIAIOSFODNN7EXAMPLE with aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" >&2
        echo "GET https://bucket.s3.amazonaws.com/k?X-Amz-Signature=0123abcd&X-Amz-Security-Token=FwoGZX" >&2
        echo "botocore.exceptions.ClientError: An error occurred (AccessDenied) at https://me:pw@host/x" >&2
        exit 1
        """,
    )
    r = train(mlroot, "train.sh")
    assert r.returncode == 1
    text = mlroot.failure_text()
    for secret in ("IOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "0123abcd", "FwoGZX", "me:pw"):
        assert secret not in text
    assert 'ErrorMessage "botocore.exceptions.ClientError: An error occurred (AccessDenied)' in text


def test_program_written_failure_is_kept(mlroot):
    mlroot.script("train.sh", 'echo "my own reason" > "$SM_OUTPUT_DIR/failure"; exit 2\n')
    r = train(mlroot, "train.sh")
    assert r.returncode == 2
    assert mlroot.failure_text() == "my own reason\n"


# ---- crashes and OOM ---------------------------------------------------------------------------------------


def test_plugin_crash_in_init_is_blamed_on_the_plugin(mlroot):
    so = TEST_PLUGIN_DIR / "sup_crash_init.so"
    assert so.exists(), "build the test plugins (make test-programs)"
    (mlroot.path / "code" / "model.crash").write_text("")
    r = train(mlroot, "model.crash", env={"SMHOST_PLUGIN_PATH": str(TEST_PLUGIN_DIR)})
    assert r.returncode == 128 + signal.SIGSEGV, r.stderr
    text = mlroot.failure_text()
    assert text.startswith("PluginError:\nExitCode 139\n"), text
    assert f"plugin 'sup_crash_init' ({so}) crashed with SIGSEGV during init" in text


def _memory_cgroup(tmp_path, limit):
    """A fresh memory cgroup limited to `limit` bytes; returns (procs file, cleanup) or skips."""
    name = f"smhost-test-{os.getpid()}-{tmp_path.name}"
    v1 = Path("/sys/fs/cgroup/memory")
    if v1.is_dir():
        d = v1 / name
        try:
            d.mkdir()
            (d / "memory.limit_in_bytes").write_text(str(limit))
            sw = d / "memory.memsw.limit_in_bytes"
            if sw.exists():
                sw.write_text(str(limit))
        except OSError as e:
            pytest.skip(f"cannot create a limited v1 memory cgroup here: {e}")
        return d / "cgroup.procs", d
    v2 = Path("/sys/fs/cgroup")
    ctrl = v2 / "cgroup.controllers"
    if not ctrl.exists() or "memory" not in ctrl.read_text().split():
        pytest.skip("no cgroup memory controller on this machine")
    d = v2 / name
    try:
        d.mkdir()
        (d / "memory.max").write_text(str(limit))
        if (d / "memory.swap.max").exists():
            (d / "memory.swap.max").write_text("0")
    except OSError as e:
        pytest.skip(f"cannot create a limited v2 memory cgroup here: {e}")
    return d / "cgroup.procs", d


def test_oom_kill_is_reported(mlroot, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root")
    limit = 96 << 20
    procs, d = _memory_cgroup(tmp_path, limit)
    mlroot.script(
        "train",
        """
        #!/usr/bin/python3
        chunks = []
        while True:
            chunks.append(b"x" * (8 << 20))
        """,
    )
    try:
        r = train(mlroot, "train", preexec_fn=lambda: procs.write_text(str(os.getpid())), timeout=60)
    finally:
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    if r.returncode == 1 and "MemoryError" in r.stderr:
        pytest.skip("the allocation failed with MemoryError instead of the OOM killer (overcommit policy)")
    assert r.returncode == 137, r.stderr[-3000:]
    text = mlroot.failure_text()
    assert text.startswith("OutOfMemoryError:\nExitCode 137\n"), text
    assert f"killed by the kernel's out-of-memory killer (cgroup memory limit {limit} bytes)" in text


# ---- as PID 1 -----------------------------------------------------------------------------------------------


def test_as_pid1_reaps_orphans_and_takes_sigterm(mlroot):
    """In a new PID namespace smhost is PID 1 (no subreaper needed): orphans are reaped while the program runs,
    and a SIGTERM from outside the namespace reaches the program."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to make a PID namespace")
    mlroot.script(
        "train.sh",
        """
        trap 'echo "got TERM as pid $$"; exit 0' TERM
        for i in 1 2 3; do (sh -c 'exit 0' &); done
        (setsid sleep 1000 &)
        sleep 0.5
        ps -e -o pid=,stat=,comm= > "$SM_MODEL_DIR/ps"
        touch "$SM_MODEL_DIR/ready"
        while :; do sleep 0.05; done
        """,
    )
    p = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", str(SMHOST), "train"],
        env=base_env(mlroot, SAGEMAKER_PROGRAM="train.sh"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(mlroot.path / "model" / "ready", p)
    except BaseException:
        if p.poll() is not None and "unshare" in (p.stderr.read() if p.stderr else ""):
            pytest.skip("unshare --pid is not permitted here")
        raise
    ps = (mlroot.path / "model" / "ps").read_text().split("\n")
    assert any(l.split()[:1] == ["1"] and "smhost" in l for l in ps), ps
    assert not [l for l in ps if l.split()[1:2] and l.split()[1].startswith("Z")], ps
    # smhost's pid outside the namespace: the child of unshare
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert len(kids) == 1
    os.kill(int(kids[0]), signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "got TERM as pid 2" in out
    assert mlroot.failure_text().startswith("JobStopped:\nStopped by SIGTERM")
