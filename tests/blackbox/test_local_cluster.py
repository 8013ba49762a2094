"""`smhost local cluster`: N simulated hosts on one machine (network, UTS, mount, PID namespaces; docs/local.md).

The same machinery runs `smhost local train`; the distributed-training tests use it through this command."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SMHOST
from local_util import cluster_unavailable, wait_until_hosts_print

REASON = cluster_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))

PY = "/usr/bin/python3"

PINGPONG = textwrap.dedent(
    """
    import os, socket, time
    me = os.environ["SMHOST_LOCAL_HOST"]
    assert socket.gethostname() == me, socket.gethostname()
    if me == "algo-1":
        s = socket.socket()
        s.bind(("0.0.0.0", 7777))
        s.listen(1)
        c, addr = s.accept()
        name = c.recv(100).decode()
        c.sendall(("hello %s from %s" % (name, socket.gethostname())).encode())
        c.close()
        print("served", name, "at", socket.gethostbyname(name), "peer", addr[0])
    else:
        ip = socket.gethostbyname("algo-1")
        for _ in range(200):
            try:
                c = socket.create_connection(("algo-1", 7777), timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        c.sendall(me.encode())
        print(c.recv(100).decode(), "via", ip)
    """
)


def run(args, **kw):
    return subprocess.run([str(SMHOST), "local", "cluster"] + args, capture_output=True, text=True, timeout=120, **kw)


def machine_state():
    return (socket.gethostname(), Path("/etc/hosts").read_bytes(), sorted(os.listdir("/sys/class/net")))


def test_two_hosts_resolve_and_reach_each_other_by_name(tmp_path):
    script = tmp_path / "pingpong.py"
    script.write_text(PINGPONG)
    before = machine_state()
    p = run(["--hosts", "2", "--", PY, str(script)])
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert "algo-1 | served algo-2 at 10.213.47.12 peer 10.213.47.12" in lines, p.stdout
    assert "algo-2 | hello algo-2 from algo-1 via 10.213.47.11" in lines, p.stdout
    # nothing changed on the machine: hostname, /etc/hosts, network interfaces
    assert machine_state() == before


def test_each_host_has_its_own_hostname_hosts_file_and_binds(tmp_path):
    for h in ("algo-1", "algo-2", "algo-3"):
        (tmp_path / h).mkdir()
        (tmp_path / h / "mine").write_text(h)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.csv").write_text("1,2\n")
    p = run(["--hosts", "3", "--bind", f"{tmp_path}/{{host}}:/opt/ml", "--bind", f"{shared}:/opt/ml/input/data/train:ro",
             "--", "sh", "-c",
             'echo "$(hostname) $SMHOST_LOCAL_INDEX $SMHOST_LOCAL_HOSTS $(cat /opt/ml/mine) '
             '$(cat /opt/ml/input/data/train/data.csv) $(grep -c algo- /etc/hosts)";'
             'touch /opt/ml/input/data/train/x 2>/dev/null && echo WROTE || echo read-only'])
    assert p.returncode == 0, p.stderr
    for i in (1, 2, 3):
        assert f"algo-{i} | algo-{i} {i} algo-1,algo-2,algo-3 algo-{i} 1,2 3" in p.stdout, p.stdout
        assert f"algo-{i} | read-only" in p.stdout
    assert not (shared / "x").exists()
    # the mount point made for the channel lives in the host's own ML root; nothing else was written there
    assert (tmp_path / "algo-1" / "input" / "data" / "train").is_dir()


def test_a_failing_host_stops_the_others_and_sets_the_exit_code(tmp_path):
    # algo-2 fails once algo-1 has its SIGTERM trap in place (a marker in a shared bind)
    p = run(["--hosts", "2", "--grace-seconds", "5", "--bind", f"{tmp_path}:/mnt", "--", "sh", "-c",
             'if [ "$SMHOST_LOCAL_INDEX" = 2 ]; then while [ ! -e /mnt/ready ]; do sleep 0.05; done;'
             ' echo broken >&2; exit 3; fi;'
             'trap "echo stopped; exit 0" TERM; touch /mnt/ready; sleep 60 & wait'])
    assert p.returncode == 3, p.stderr
    assert "algo-2 | broken" in p.stderr
    assert "algo-1 | stopped" in p.stdout
    assert "algo-2   exit code   3" in p.stderr and "(failed first)" in p.stderr


def test_ctrl_c_stops_every_host_gracefully_then_exits_130(tmp_path):
    marker = tmp_path / "marks"
    marker.mkdir()
    proc = subprocess.Popen(
        [str(SMHOST), "local", "cluster", "--hosts", "2", "--bind", f"{marker}:/mnt", "--", "sh", "-c",
         'trap "touch /mnt/$SMHOST_LOCAL_HOST; exit 0" TERM; echo ready; sleep 60 & wait'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_hosts_print(proc, "ready", 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert sorted(os.listdir(marker)) == ["algo-1", "algo-2"]
    assert "SIGINT: stopping every host" in err


def test_grace_period_then_sigkill():
    proc = subprocess.Popen([str(SMHOST), "local", "cluster", "--hosts", "1", "--grace-seconds", "1", "--", "sh", "-c",
                             'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().endswith("ready\n")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert time.monotonic() - t0 < 10
    assert "killing them" in err


def test_killed_supervisor_leaves_nothing_and_the_next_run_cleans_its_directory(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([str(SMHOST), "local", "cluster", "--hosts", "2", "--", "sh", "-c",
                             'echo ready; exec sleep 300'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    for _ in range(2):
        assert proc.stdout.readline().endswith("ready\n")
    [rundir] = [d for d in os.listdir(tmp_path) if d.startswith("smhost-local-")]
    proc.kill()
    proc.wait()
    # every host died with the supervisor (PR_SET_PDEATHSIG): no process of the run is left
    for _ in range(50):
        left = subprocess.run(["pgrep", "-f", "exec sleep 300|^sleep 300$"], capture_output=True, text=True).stdout.split()
        left = [pid for pid in left if Path(f"/proc/{pid}/environ").exists() and
                str(tmp_path).encode() in Path(f"/proc/{pid}/environ").read_bytes()]
        if not left:
            break
        time.sleep(0.1)
    assert not left
    assert (tmp_path / rundir).exists()
    # a run directory younger than 10 s may be a run starting up: left alone; make this one look older
    old = time.time() - 60
    os.utime(tmp_path / rundir, (old, old))
    p = subprocess.run([str(SMHOST), "local", "cluster", "--hosts", "1", "--", "true"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / rundir).exists()
    assert "left by a local run that was killed" in p.stderr
    assert [d for d in os.listdir(tmp_path) if d.startswith("smhost-local-")] == []


def test_user_namespace_path_as_root():
    """SMHOST_LOCAL_USERNS=1 takes the non-root path (a user namespace) even as root."""
    if os.geteuid() != 0:
        pytest.skip("covered by running as a normal user")
    p = run(["--hosts", "2", "--", "sh", "-c", 'echo "$(hostname) $(id -u) $(getent hosts algo-2 | cut -f1 -d" ")"'],
            env=dict(os.environ, SMHOST_LOCAL_USERNS="1"))
    if p.returncode == 69:
        pytest.skip("user namespaces refused here: " + p.stderr.strip())
    assert p.returncode == 0, p.stderr
    assert "algo-1 | algo-1 0 10.213.47.12" in p.stdout


def test_as_a_normal_user_through_user_namespaces(tmp_path):
    reason = cluster_unavailable(user=65534)
    if reason:
        print("skipped:", reason)
        pytest.skip(reason)
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="smhost-test-"))  # readable by the other user, unlike pytest's tmp_path
    d.chmod(0o755)
    script = d / "pingpong.py"
    script.write_text(PINGPONG)
    script.chmod(0o644)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SMHOST), "local", "cluster",
                        "--hosts", "2", "--", PY, str(script)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TMPDIR="/tmp"))
    script.unlink()
    d.rmdir()
    assert p.returncode == 0, p.stderr
    assert "algo-1 | served algo-2" in p.stdout
    assert "algo-2 | hello algo-2 from algo-1 via 10.213.47.11" in p.stdout


def test_usage_errors():
    p = run(["--", "true"])
    assert p.returncode == 64 and "--hosts N is required" in p.stderr
    p = run(["--hosts", "0", "--", "true"])
    assert p.returncode == 64 and "whole number from 1" in p.stderr
    p = run(["--hosts", "1"])
    assert p.returncode == 64 and "no command after --" in p.stderr
    p = run(["--hosts", "1", "--bind", "/tmp", "--", "true"])
    assert p.returncode == 64 and "SRC:DST" in p.stderr
    p = run(["--hosts", "1", "--bind", "/tmp:/no/such/place", "--", "true"])
    assert p.returncode == 71 and "mount point does not exist" in p.stderr
    p = run(["--hosts", "1", "--", "/no/such/program"])
    assert p.returncode == 127 and "cannot run /no/such/program" in p.stderr
    p = run(["--help"])
    assert p.returncode == 0 and "--hosts N" in p.stdout


def test_opt_ml_missing_on_the_machine_is_made_inside_the_host_only(tmp_path):
    """Where /opt/ml does not exist, the host's /opt is a tmpfs with the real /opt entries bound back, plus ml/.
    The 'machine' here is a private mount namespace whose /opt holds only keep.txt."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and util-linux unshare to fake a machine without /opt/ml")
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "inside").write_text("ml root\n")
    script = (f'mount -t tmpfs tmpfs /opt && echo kept > /opt/keep.txt && '
              f'{SMHOST} local cluster --hosts 1 --bind {ml}:/opt/ml -- sh -c "cat /opt/keep.txt /opt/ml/inside; ls /opt" '
              f'&& echo "after: $(ls /opt)"')
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "algo-1 | kept" in p.stdout and "algo-1 | ml root" in p.stdout
    assert "algo-1 | keep.txt" in p.stdout and "algo-1 | ml" in p.stdout
    assert "after: keep.txt" in p.stdout  # no ml/ was created on the 'machine'


TORCH_ALLREDUCE = textwrap.dedent(
    """
    import os, torch, torch.distributed as dist
    rank = int(os.environ["SMHOST_LOCAL_INDEX"]) - 1
    dist.init_process_group("gloo", init_method="tcp://algo-1:29500", rank=rank, world_size=2)
    t = torch.tensor([rank + 1.0])
    dist.all_reduce(t)
    print("rank", rank, "sum", t.item())
    dist.destroy_process_group()
    """
)


def test_torch_gloo_all_reduce_across_two_hosts(tmp_path):
    """The machinery is fit for distributed training: torch.distributed finds algo-1 by name over eth0."""
    if subprocess.run([PY, "-c", "import torch"], capture_output=True).returncode:
        pytest.skip("python3-torch is not installed")
    script = tmp_path / "allreduce.py"
    script.write_text(TORCH_ALLREDUCE)
    p = run(["--hosts", "2", "--", PY, str(script)])
    assert p.returncode == 0, p.stderr
    assert "algo-1 | rank 0 sum 3.0" in p.stdout and "algo-2 | rank 1 sum 3.0" in p.stdout
