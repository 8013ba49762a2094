"""Distributed training (contract section 6, docs/distributed.md) on a real cluster simulated on this machine.

Every multi-host case runs `smhost local cluster` (docs/local.md): one network, UTS, mount and PID namespace per
host, veth pairs to a bridge in its own namespace, a private /24 that exists only inside those namespaces, hostname
algo-i, per-host /etc/hosts and /opt/ml bind mounts.  The same machinery runs `smhost local train`.  Nothing on the
machine changes, and the kernel removes the namespaces when their processes end (the cluster command tears down on
failure and Ctrl-C too).  Single-host cases run in a one-host cluster as well, so that ports (7777, 7779, 22) are
private to the test.

Every case has a time bound: the subprocess timeout, and for the failure cases an explicit elapsed-time check.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import BUILD, REPO, SANITIZED, SMHOST, MLRoot, merged_env, run_smhost
from local_util import cluster_unavailable

REASON = cluster_unavailable()
_no_cluster = pytest.mark.skipif(REASON is not None, reason=str(REASON))


def needs_cluster(fn):
    """A case that runs ranks on simulated hosts."""
    return _no_cluster(fn)
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="python3-torch is not installed (tools/deps.sh installs it)")
needs_mpi = pytest.mark.skipif(not (HAVE_MPI4PY and shutil.which("mpirun") and os.path.exists("/usr/sbin/sshd")),
                               reason="python3-mpi4py, openmpi-bin and openssh-server are needed (tools/deps.sh)")

TORCHRUN_VARS = ["GROUP_RANK", "GROUP_WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "NCCL_ASYNC_ERROR_HANDLING", "OMP_NUM_THREADS", "RANK", "ROLE_NAME", "ROLE_RANK", "ROLE_WORLD_SIZE",
                 "TORCHELASTIC_ERROR_FILE", "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RESTART_COUNT",
                 "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "WORLD_SIZE"]


# ---- the cluster ------------------------------------------------------------------------------------------------
class Cluster:
    """N per-host ML roots under tmp_path/<host>, bound over /opt/ml of each simulated host."""

    def __init__(self, tmp_path, n=2, hps=None, groups=None, current_groups=None):
        self.tmp = tmp_path
        self.n = n
        self.hosts = [f"algo-{i}" for i in range(1, n + 1)]
        self.roots = {}
        for h in self.hosts:
            root = MLRoot(tmp_path / h)
            (root.path / "output" / "data").mkdir(parents=True, exist_ok=True)
            rc = {"current_host": h, "hosts": self.hosts, "network_interface_name": "eth0"}
            if groups:
                rc["instance_groups"] = [{"instance_group_name": g, "instance_type": "ml.c5.xlarge", "hosts": hs}
                                         for g, hs in groups.items()]
                rc["current_group_name"] = next(g for g, hs in groups.items() if h in hs)
            root.write_json("input/config/resourceconfig.json", rc)
            root.hyperparameters(hps or {})
            self.roots[h] = root
        self.ini = tmp_path / "smhost.ini"
        self.ini.write_text("[distributed]\nfailure_grace_seconds = 3\nstart_timeout_seconds = 60\n")

    def code(self, name, text, mode=0o755):
        for root in self.roots.values():
            p = root.path / "code" / name
            p.write_text(textwrap.dedent(text).lstrip())
            p.chmod(mode)

    def code_file(self, name, src):
        for root in self.roots.values():
            shutil.copy(src, root.path / "code" / name)

    def data(self, host, name):
        return self.roots[host].path / "output" / "data" / name

    def failure(self, host):
        f = self.roots[host].failure
        return f.read_text() if f.exists() else None

    def run(self, program, command=None, env=None, binds=(), timeout=120):
        e = merged_env(None, {"SAGEMAKER_PROGRAM": program, "SMHOST_CONFIG": str(self.ini), **(env or {})})
        cmd = [str(SMHOST), "local", "cluster", "--hosts", str(self.n), "--keep-going", "--grace-seconds", "20",
               "--bind", f"{self.tmp}/{{host}}:/opt/ml"]
        for b in binds:
            cmd += ["--bind", b]
        cmd += ["--"] + (command or [str(SMHOST), "train"])
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)
        p.elapsed = time.monotonic() - t0
        return p


def host_codes(stderr):
    """{host: exit code} from the cluster's summary (printed when a host fails)."""
    codes = {}
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].startswith("algo-") and parts[1:3] == ["exit", "code"]:
            codes[parts[0]] = int(parts[3])
    return codes


TORCH_PROGRAM = """
    import json, os, socket
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    t = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    out = "/opt/ml/output/data/%s-%s.json" % (os.environ.get("TAG", "smhost"), os.environ["RANK"])
    with open(out, "w") as f:
        json.dump({"env": dict(os.environ), "sum": t.item(), "hostname": socket.gethostname(),
                   "world": dist.get_world_size()}, f)
    dist.destroy_process_group()
"""


@needs_cluster
@needs_torch
def test_torch_gloo_all_reduce_2x2_matches_torchrun(tmp_path):
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    c.code("train.py", TORCH_PROGRAM)
    p = c.run("train.py", timeout=150)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # every output line is traced to its host and rank
    assert "[algo-2 rank 3]" in p.stdout + p.stderr and "[algo-1 rank 0]" in p.stdout + p.stderr
    ours = {}
    for r in range(4):
        host = "algo-1" if r < 2 else "algo-2"
        d = json.loads(c.data(host, f"smhost-{r}.json").read_text())
        assert d["sum"] == 10.0 and d["world"] == 4
        assert d["hostname"] == host  # the gethostname library, also in the in-process Python runner
        assert d["env"]["NCCL_SOCKET_IFNAME"] == "eth0"
        ours[r] = d["env"]
    for h in c.hosts:
        assert c.roots[h].success.exists()

    # The truth: Debian's torchrun in the same cluster (it crashes on Python 3.11 without --redirects/--tee).
    launch = ("exec torchrun --nnodes 2 --nproc_per_node 2 --master_addr algo-1 --master_port 7777 "
              "--node_rank $((SMHOST_LOCAL_INDEX-1)) --redirects 1 --tee 1 /opt/ml/code/train.py")
    p = c.run("train.py", command=["/bin/sh", "-c", launch], env={"TAG": "torchrun"}, timeout=150)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for r in range(4):
        host = "algo-1" if r < 2 else "algo-2"
        theirs = json.loads(c.data(host, f"torchrun-{r}.json").read_text())["env"]
        for k in TORCHRUN_VARS:
            assert k in theirs, k
        # torchrun sets nothing smhost does not, except the agent-store flag (smhost hosts no torch store)
        # (TAG is this test's own variable, PWD comes from the /bin/sh that starts torchrun here)
        missing = set(theirs) - set(ours[r]) - {"TAG", "PWD"}
        assert missing == {"TORCHELASTIC_USE_AGENT_STORE"}, missing
        for k in TORCHRUN_VARS:
            if k in ("TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_ERROR_FILE"):
                continue
            assert ours[r][k] == theirs[k], (r, k, ours[r][k], theirs[k])
        assert ours[r]["TORCHELASTIC_ERROR_FILE"].endswith(f"/attempt_0/{r % 2}/error.json")


FAIL_PROGRAM = """
    import os, sys, time
    import torch, torch.distributed as dist
    from torch.distributed.elastic.multiprocessing.errors import record

    @record
    def main():
        dist.init_process_group("gloo")
        if os.environ["RANK"] == "3":
            time.sleep(0.5)
            raise ValueError("rank three is broken")
        if os.environ["MODE"] == "sleep":
            time.sleep(600)  # a long local step: no collective library will notice
        t = torch.zeros(1)
        dist.all_reduce(t)  # waits for rank 3 forever
        time.sleep(600)

    main()
"""


@needs_cluster
@needs_torch
@pytest.mark.parametrize("mode", ["collective", "sleep"])
def test_rank_failure_stops_every_host(tmp_path, mode):
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    c.code("train.py", FAIL_PROGRAM)
    p = c.run("train.py", env={"MODE": mode}, timeout=150)
    assert p.elapsed < 90, p.elapsed  # the others would sleep 600 s
    codes = host_codes(p.stderr)
    assert codes == {"algo-1": 76, "algo-2": 1}, p.stderr[-2000:]
    for h in c.hosts:
        text = c.failure(h)
        assert text is not None, h
        assert "algo-2" in text and "rank 3" in text and "ValueError: rank three is broken" in text, text
        assert not c.roots[h].success.exists()
    assert c.failure("algo-1").startswith("ExecuteUserScriptError:\nExitCode 76\n")
    assert "another host failed first" in c.failure("algo-1")


@needs_cluster
@pytest.mark.parametrize("victim", ["algo-2", "algo-1"])
def test_sigterm_on_one_host_stops_every_rank_with_grace(tmp_path, victim):
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    # A rank plays the platform: SIGTERM to smhost (the supervisor) on one host only (a worker, or the master).
    # Every rank checkpoints on TERM.
    killer = 2 if victim == "algo-2" else 0
    other = "algo-1" if victim == "algo-2" else "algo-2"
    ready = tmp_path / "ready"  # shared by the simulated hosts (only /opt/ml and /etc/hosts are per host)
    ready.mkdir()
    c.code("train.sh", f"""
        trap 'echo "$RANK" > /opt/ml/output/data/checkpoint-$RANK; exit 0' TERM
        echo "rank $RANK up"
        touch {ready}/$RANK
        if [ "$RANK" = {killer} ]; then
            # every rank has its handler in place (a loaded machine may start them seconds apart)
            i=0
            while [ $(ls {ready} | wc -l) -lt 4 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
            agent=$PPID
            sup=$(cut -d' ' -f4 /proc/$agent/stat)
            kill -TERM "$sup"
        fi
        i=0
        while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    """)
    p = c.run("train.sh", timeout=120)
    assert p.elapsed < 45, p.elapsed
    for r in range(4):
        host = "algo-1" if r < 2 else "algo-2"
        assert c.data(host, f"checkpoint-{r}").exists(), (r, p.stdout[-2000:], p.stderr[-2000:])
    text = c.failure(other)
    assert text and text.startswith("JobStopped:") and f"SIGTERM on host {victim}" in text, text
    assert c.failure(victim) and c.failure(victim).startswith("JobStopped:"), c.failure(victim)
    assert not c.roots[other].success.exists()


NATIVE = r"""
#include <smhost/trainer.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

SMH_TRAINER(smh_train) {
    char name[256] = "";
    gethostname(name, sizeof name);
    const char *rank = getenv("RANK"), *world = getenv("WORLD_SIZE");
    char path[1024];
    snprintf(path, sizeof path, "%s/native-%s.txt", host->job_path(job, SMH_PATH_OUTPUT_DATA), rank ? rank : "x");
    FILE *f = fopen(path, "w");
    if (!f) return smh_trainer_fail(err, errlen, 1, "cannot write %s", path);
    fprintf(f, "%s %s %s\n", rank ? rank : "", world ? world : "", name);
    fclose(f);
    return 0;
}
"""


@needs_cluster
def test_native_so_trainer_2x2(tmp_path):
    src = tmp_path / "t.c"
    src.write_text(NATIVE)
    so = tmp_path / "libdisttrain.so"
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-fPIC", "-shared", f"-I{REPO / 'sdk' / 'include'}",
                    "-o", str(so), str(src)], check=True)
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    c.code_file("libdisttrain.so", so)
    p = c.run("libdisttrain.so", timeout=60)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for r in range(4):
        host = "algo-1" if r < 2 else "algo-2"
        assert c.data(host, f"native-{r}.txt").read_text().split() == [str(r), "4", host]


# ---- MPI -------------------------------------------------------------------------------------------------------
@pytest.fixture
def ssh_setup(tmp_path):
    """Keys and an sshd_config for the simulated hosts (bound over /etc/ssh/sshd_config inside them), and an ssh
    wrapper for mpirun (through sagemaker_mpi_custom_mpi_options, as a user would)."""
    d = tmp_path / "ssh"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    (d / "sshd_config").write_text(textwrap.dedent(f"""
        Port 22
        HostKey {d}/host_key
        PermitRootLogin prohibit-password
        AuthorizedKeysFile {d}/authorized_keys
        StrictModes no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        PidFile none
        AcceptEnv *
    """))
    agent = d / "ssh.sh"
    agent.write_text(f"#!/bin/sh\nexec ssh -i {d}/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                     f"-o LogLevel=ERROR \"$@\"\n")
    agent.chmod(0o755)
    return {"bind": f"{d}/sshd_config:/etc/ssh/sshd_config", "options": f"-mca plm_rsh_agent {agent}"}


MPI_PROGRAM = """
    import json, os, socket
    from mpi4py import MPI
    c = MPI.COMM_WORLD
    s = c.allreduce(c.Get_rank() + 1)
    with open("/opt/ml/output/data/mpi-%d.json" % c.Get_rank(), "w") as f:
        json.dump({"size": c.Get_size(), "sum": s, "hostname": socket.gethostname(),
                   "sm": {k: v for k, v in os.environ.items() if k.startswith("SM_")}}, f)
    if os.environ.get("SM_HP_FAIL_RANK") == str(c.Get_rank()):
        raise RuntimeError("mpi rank %d gave up" % c.Get_rank())
"""


@needs_cluster
@needs_mpi
def test_mpi4py_allreduce_2x2_over_sshd(tmp_path, ssh_setup):
    etc_environment = Path("/etc/environment").read_bytes() if Path("/etc/environment").exists() else None
    c = Cluster(tmp_path, hps={"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2,
                               "sagemaker_mpi_custom_mpi_options": ssh_setup["options"], "lr": 0.5})
    c.code("train.py", MPI_PROGRAM)
    p = c.run("train.py", binds=[ssh_setup["bind"]], timeout=120)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    for r in range(4):
        host = "algo-1" if r < 2 else "algo-2"
        d = json.loads(c.data(host, f"mpi-{r}.json").read_text())
        assert d["size"] == 4 and d["sum"] == 10
        assert d["hostname"] == host
        # SM_* variables in the ranks on the worker host too
        assert d["sm"]["SM_HP_LR"] == "0.5" and json.loads(d["sm"]["SM_HOSTS"]) == ["algo-1", "algo-2"]
        assert "SM_TRAINING_ENV" in d["sm"]
    for h in c.hosts:
        assert c.roots[h].success.exists(), (h, p.stderr[-3000:])
    assert "[algo-1 mpirun]" in p.stdout + p.stderr
    # nothing written to /etc/environment (the simulated hosts share the machine's /etc)
    assert (Path("/etc/environment").read_bytes() if Path("/etc/environment").exists() else None) == etc_environment


@needs_cluster
@needs_mpi
def test_mpi_rank_failure_reaches_the_worker(tmp_path, ssh_setup):
    c = Cluster(tmp_path, hps={"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2,
                               "sagemaker_mpi_custom_mpi_options": ssh_setup["options"], "fail_rank": "3"})
    c.code("train.py", MPI_PROGRAM)
    p = c.run("train.py", binds=[ssh_setup["bind"]], timeout=120)
    assert p.elapsed < 90
    codes = host_codes(p.stderr)
    # rank 3 ran on algo-2 (under orted): its code there, 76 on the master that ran mpirun
    assert codes == {"algo-1": 76, "algo-2": 1}, p.stderr[-3000:]
    for h in c.hosts:
        text = c.failure(h)
        assert text and "rank 3" in text and "algo-2" in text and "mpi rank 3 gave up" in text, (h, text)


@needs_cluster
def test_missing_sshd_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty-sbin"
    empty.mkdir()
    c = Cluster(tmp_path, n=1, hps={"sagemaker_mpi_enabled": True})
    c.code("train.sh", "touch /opt/ml/output/data/ran\n")
    p = c.run("train.sh", binds=[f"{empty}:/usr/sbin"], timeout=60)
    assert p.returncode == 78, p.stderr[-2000:]
    text = c.failure("algo-1")
    assert "/usr/sbin/sshd" in text and "openssh-server" in text, text
    assert not c.data("algo-1", "ran").exists()


# ---- before anything starts --------------------------------------------------------------------------------
@pytest.mark.parametrize("flag,launcher", [("sagemaker_pytorch_xla_multi_worker_enabled", "'xla' launcher"),
                                           ("sagemaker_distributed_dataparallel_enabled", "'smddp' launcher"),
                                           ("sagemaker_multi_worker_mirrored_strategy_enabled", "'tensorflow' launcher")])
def test_unsupported_flag_fails_before_start(mlroot, flag, launcher):
    mlroot.hyperparameters({flag: True})
    mlroot.script("train.sh", f"touch {mlroot.path}/ran\n")
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"}, timeout=30)
    assert r.returncode == 78, r.stderr
    text = mlroot.failure_text()
    assert flag in text and launcher in text and "Nothing was started" in text, text
    assert not (mlroot.path / "ran").exists()


@needs_cluster
def test_heterogeneous_only_distribution_hosts_launch(tmp_path):
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True,
                               "sagemaker_distribution_instance_groups": ["gpu"],
                               "sagemaker_mpi_num_of_processes_per_host": 2},
                groups={"cpu": ["algo-1"], "gpu": ["algo-2"]})
    c.code("train.sh", 'echo "${RANK:-none} ${WORLD_SIZE:-none} ${MASTER_ADDR:-none}" > '
                       '/opt/ml/output/data/seen-${RANK:-plain}\n')
    p = c.run("train.sh", timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert c.data("algo-1", "seen-plain").read_text().split() == ["none", "none", "none"]
    assert not c.data("algo-1", "seen-0").exists()
    for r in range(2):
        assert c.data("algo-2", f"seen-{r}").read_text().split() == [str(r), "2", "algo-2"]


def test_env_shows_the_launch_plan(mlroot):
    mlroot.resourceconfig("algo-1", ["algo-1", "algo-2"], network_interface_name="eth0")
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py"})
    assert r.returncode == 0, r.stderr
    launch = json.loads(r.stdout)["launch"]
    assert launch["launcher"] == "torch" and launch["nodes"] == ["algo-1", "algo-2"]
    procs = launch["processes"]
    assert [p["rank"] for p in procs] == [0, 1]
    assert procs[1]["env"]["RANK"] == "1" and procs[1]["env"]["WORLD_SIZE"] == "4"
    assert procs[0]["env"]["LD_PRELOAD"].endswith("/gethostname.so")
    assert not list(Path("/tmp").glob("smhost-launch-*/attempt_0/*/ran"))
    r = run_smhost(["env"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py"})
    assert "# launch: launcher torch" in r.stdout and "RANK=1" in r.stdout


@pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="openssh-server is not installed")
def test_env_shows_the_contract_mpirun_command(mlroot):
    mlroot.resourceconfig("algo-1", ["algo-2", "algo-1"], network_interface_name="ethwe")
    mlroot.hyperparameters({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2,
                            "sagemaker_mpi_custom_mpi_options": "--verbose -mca x y", "epochs": 3})
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py"})
    assert r.returncode == 0, r.stderr
    launch = json.loads(r.stdout)["launch"]
    assert launch["wait_port"] == 22
    sshd = [p for p in launch["processes"] if p["service"]]
    assert [p["argv"] for p in sshd] == [["/usr/sbin/sshd", "-D"]]
    argv = next(p["argv"] for p in launch["processes"] if not p["service"])
    pre = str((BUILD / "lib" / "smhost" / "gethostname.so").resolve())
    head = ["mpirun", "--host", "algo-1:2,algo-2:2", "-np", "4", "--allow-run-as-root", "--display-map",
            "--tag-output", "-mca", "btl_tcp_if_include", "ethwe", "-mca", "oob_tcp_if_include", "ethwe",
            "-mca", "plm_rsh_no_tree_spawn", "1", "-bind-to", "none", "-map-by", "slot", "-mca", "pml", "ob1",
            "-mca", "btl", "^openib", "-mca", "orte_abort_on_non_zero_status", "1",
            "-mca", "btl_vader_single_copy_mechanism", "none", "-x", "NCCL_MIN_NRINGS=4",
            "-x", "NCCL_SOCKET_IFNAME=ethwe", "-x", "NCCL_DEBUG=INFO", "-x", "LD_LIBRARY_PATH", "-x", "PATH",
            "-x", f"LD_PRELOAD={pre}"]
    if SANITIZED:  # the ranks are the instrumented smhost, with gethostname.so ahead of the ASan runtime
        user = os.environ.get("ASAN_OPTIONS")
        head += ["-x", f"ASAN_OPTIONS={user + ':' if user else ''}verify_asan_link_order=0"]
    head += ["--verbose", "-mca", "x", "y"]
    assert argv[:len(head)] == head, argv
    rest = argv[len(head):]
    assert rest[-2:] == [str(SMHOST.resolve()), "rank"]
    exported = [rest[i + 1] for i in range(0, len(rest) - 2, 2) if rest[i] == "-x"]
    assert "SM_HP_EPOCHS" in exported and "SM_TRAINING_ENV" in exported and "PYTHONPATH" in exported
    assert all("=" not in x for x in exported)  # names only: values (and secrets) never go on argv

    # one process per host: --host without slots; sagemaker_mpi_num_processes overrides the total
    mlroot.hyperparameters({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_processes": 3})
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py"})
    argv = next(p["argv"] for p in json.loads(r.stdout)["launch"]["processes"] if not p["service"])
    assert argv[1:5] == ["--host", "algo-1,algo-2", "-np", "3"], argv[:6]


def test_user_ld_preload_is_kept(mlroot, tmp_path):
    mlroot.resourceconfig("algo-1", ["algo-1"])
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True})
    r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py",
                                                          "LD_PRELOAD": "/usr/lib/libmine.so"})
    env = json.loads(r.stdout)["launch"]["processes"][0]["env"]
    assert env["LD_PRELOAD"].endswith("/gethostname.so:/usr/lib/libmine.so"), env["LD_PRELOAD"]


def test_efa_and_nccl_variables_only_where_they_apply(mlroot, tmp_path):
    sysroot = tmp_path / "sysroot"
    (sysroot / "dev" / "infiniband").mkdir(parents=True)
    (sysroot / "dev" / "infiniband" / "uverbs0").write_text("")  # a test double for EFA hardware
    mlroot.resourceconfig("algo-1", ["algo-1"], network_interface_name="lo")
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True})

    def plan(**env):
        r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py", **env})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["launch"]["processes"][0]["env"]

    e = plan()
    assert e["NCCL_SOCKET_IFNAME"] == "lo" and "FI_PROVIDER" not in e and "NCCL_PROTO" not in e
    e = plan(SMHOST_TEST_SYSROOT=str(sysroot))
    assert (e["FI_PROVIDER"], e["FI_EFA_USE_DEVICE_RDMA"], e["RDMAV_FORK_SAFE"], e["NCCL_PROTO"]) == \
        ("efa", "1", "1", "simple")
    e = plan(SMHOST_TEST_SYSROOT=str(sysroot), FI_PROVIDER="tcp", NCCL_SOCKET_IFNAME="eth9")
    assert "FI_PROVIDER" not in e and "NCCL_SOCKET_IFNAME" not in e  # the user's values stay
    assert e["NCCL_PROTO"] == "simple"
    mlroot.resourceconfig("algo-1", ["algo-1"], network_interface_name="smhost-no-such-if0")
    e = plan()
    assert "NCCL_SOCKET_IFNAME" not in e  # the interface does not exist here


@needs_cluster
def test_a_host_that_never_joins_is_named_within_the_bound(tmp_path):
    c = Cluster(tmp_path, hps={"sagemaker_torch_distributed_enabled": True})
    c.ini.write_text("[distributed]\nstart_timeout_seconds = 3\n")
    c.code("train.sh", "touch /opt/ml/output/data/ran\n")
    launch = f'if [ "$SMHOST_LOCAL_INDEX" = 1 ]; then exec {SMHOST} train; else sleep 6; fi'
    p = c.run("train.sh", command=["/bin/sh", "-c", launch], timeout=60)
    assert host_codes(p.stderr).get("algo-1") == 69, p.stderr[-2000:]
    text = c.failure("algo-1")
    assert "algo-2" in text and "never joined within 3 s" in text and "start_timeout_seconds" in text, text
    assert not c.data("algo-1", "ran").exists()


def test_leftover_child_holding_a_rank_pipe_does_not_hang_the_job(mlroot):
    """Rank processes that exit while a child of theirs keeps stdout open (a data loader, `cmd &`): the job ends."""
    mlroot.resourceconfig("algo-1", ["algo-1"])
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    mlroot.script("train.sh", 'sleep 120 &\necho "rank $RANK done"\n')
    t0 = time.monotonic()
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh"}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 20
    assert "[algo-1 rank 1] rank 1 done" in r.stdout
    assert mlroot.success.exists()


def test_single_host_failure_stops_the_sibling_after_the_failure_grace(mlroot, tmp_path):
    ini = tmp_path / "smhost.ini"
    ini.write_text("[distributed]\nfailure_grace_seconds = 2\n")
    mlroot.resourceconfig("algo-1", ["algo-1"])
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    # rank 0 ignores SIGTERM (it must be killed after the grace); rank 1 fails with an error line
    mlroot.script("train.sh", """
        if [ "$RANK" = 0 ]; then trap '' TERM; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; fi
        sleep 0.3
        echo "KeyError: 'missing column'" >&2
        exit 7
    """)
    t0 = time.monotonic()
    r = run_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.sh", "SMHOST_CONFIG": str(ini)},
                   timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 7, r.stderr
    assert 2 <= elapsed < 15, elapsed
    text = mlroot.failure_text()
    assert text.startswith("ExecuteUserScriptError:\nExitCode 7\n"), text
    assert "host algo-1, rank 1" in text and "KeyError: 'missing column'" in text, text
    assert "SIGKILL" in r.stderr


@pytest.mark.parametrize("how,expect_code,expect", [
    ("error_file", 1, "ZeroDivisionError: from the error file"),
    ("signal", 137, "killed by SIGKILL"),
])
def test_failure_report_of_a_rank(mlroot, tmp_path, how, expect_code, expect):
    """The failure names the rank's error: TORCHELASTIC_ERROR_FILE when the rank wrote one (what torch's @record
    does), and the signal when one killed it."""
    ini = tmp_path / "smhost.ini"
    ini.write_text("[distributed]\nfailure_grace_seconds = 2\n")
    mlroot.resourceconfig("algo-1", ["algo-1"])
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    mlroot.script("train.sh", """
        if [ "$RANK" = 0 ]; then sleep 30; exit 0; fi
        echo "a misleading last line" >&2
        if [ "$HOW" = error_file ]; then
            printf '{"message": {"message": "ZeroDivisionError: from the error file", "extraInfo": {}}}' \\
                > "$TORCHELASTIC_ERROR_FILE"
            exit 1
        fi
        kill -KILL $$
    """)
    r = run_smhost(["train"], mlroot=mlroot, timeout=60,
                   env={"SAGEMAKER_PROGRAM": "train.sh", "SMHOST_CONFIG": str(ini), "HOW": how})
    assert r.returncode == expect_code, r.stderr
    text = mlroot.failure_text()
    assert "rank 1" in text and expect in text, text


def test_processes_per_host_from_the_gpus_and_per_rank_isolation(mlroot, tmp_path):
    """Without sagemaker_mpi_num_of_processes_per_host one rank per GPU (here two made-up GPUs of the 'testdev'
    test backend); with [devices] isolate each rank gets its own device's visibility variable."""
    from conftest import TEST_PLUGIN_DIR
    d = tmp_path / "plugins"
    d.mkdir()
    shutil.copy(TEST_PLUGIN_DIR / "testdev_backend.so", d / "testdev.so")
    ini = tmp_path / "smhost.ini"
    mlroot.resourceconfig("algo-1", ["algo-1"])
    mlroot.hyperparameters({"sagemaker_torch_distributed_enabled": True})

    def plan(isolate):
        ini.write_text("[devices]\nbackends = testdev\n" + ("isolate = true\n" if isolate else ""))
        r = run_smhost(["env", "--json"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "train.py", "SMHOST_CONFIG": str(ini),
                                                              "SMHOST_PLUGIN_PATH": str(d)})
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["launch"]

    launch = plan(False)
    assert launch["procs_per_host"] == 2 and [p["rank"] for p in launch["processes"]] == [0, 1]
    assert all("TESTDEV_VISIBLE" not in p["env"] for p in launch["processes"])
    launch = plan(True)
    assert [p["env"]["TESTDEV_VISIBLE"] for p in launch["processes"]] == ["testdev-0", "testdev-1"]
