#!/usr/bin/python3
"""smhost's launcher against Debian's torchrun, side by side in the same simulated cluster (bench/distributed.sh).

For each shape (hosts x processes per host) and each side, one run per repetition, alternating sides:
  * start -> all ranks running: from the moment the launcher is exec'd on a host (the earliest host) to the moment
    the last rank's program begins (its first line writes time.time_ns());
  * trivial gloo job: from the same start to the moment the last host's launcher exits, for a program that calls
    init_process_group("gloo"), one all_reduce and destroy_process_group;
  * peak memory of the launcher itself: the high-water RSS (VmHWM) of smhost's processes on a host (supervisor and
    job process; the ranks are not counted) against torchrun's agent process, read by local rank 0 from its
    ancestors after the ranks have run for a second.
Both sides run the same program with the same Python; the cluster (smhost local cluster: namespaces, bridge,
per-host /opt/ml) is set up before the clock starts.  Medians over the repetitions; ratios are smhost / torchrun
(below 1 means smhost is faster or smaller).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BUILD = Path(sys.argv[1]).resolve()
SMHOST = BUILD / "bin" / "smhost"
# SMHOST_BENCH_SMOKE=1 (make bench-smoke, part of make test) or BENCH_QUICK=1: one repetition of 1x2, seconds long
QUICK = os.environ.get("SMHOST_BENCH_SMOKE") == "1" or os.environ.get("BENCH_QUICK") == "1"
REPS = 1 if QUICK else int(os.environ.get("BENCH_REPS", "5"))

START = """
import os, time
with open("/opt/ml/output/data/start-%s" % os.environ["RANK"], "w") as f:
    f.write(str(time.time_ns()))
"""
GLOO = START + """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
dist.destroy_process_group()
"""
SLEEP = START + """
# After a while, the launcher's own high-water RSS (VmHWM): its processes are this rank's ancestors whose command
# line is `smhost train` (supervisor and job process) or torchrun's agent.  The rank itself is not counted.
time.sleep(float(os.environ.get("HOLD", "1.0")))
if os.environ["LOCAL_RANK"] == "0":
    kb, pid = 0, os.getppid()
    while pid > 1:
        try:
            cmd = open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\\0", b" ").decode()
            status = open("/proc/%d/status" % pid).read()
        except OSError:
            break
        if "smhost train" in cmd or "torchrun" in cmd:
            kb += int(status.split("VmHWM:")[1].split()[0])
        pid = int(status.split("PPid:")[1].split()[0])
    with open("/opt/ml/output/data/peak_kb", "w") as f:
        f.write(str(kb))
"""

# Per host: note the start, run the launcher, note the end.
WRAPPER = r"""#!/bin/sh
d=/opt/ml/output/data
date +%s%N > $d/t0
"$@"
rc=$?
date +%s%N > $d/t1
exit $rc
"""


def setup(work, hosts, program):
    names = [f"algo-{i}" for i in range(1, hosts + 1)]
    for h in names:
        root = work / h
        if root.exists():
            shutil.rmtree(root)
        for d in ("input/config", "code", "output/data", "model"):
            (root / d).mkdir(parents=True)
        (root / "input/config/resourceconfig.json").write_text(
            json.dumps({"current_host": h, "hosts": names, "network_interface_name": "eth0"}))
        (root / "code/prog.py").write_text(textwrap.dedent(program))
    return names


def run(work, side, hosts, procs, program, hold=None):
    names = setup(work, hosts, program)
    for h in names:
        hps = {"sagemaker_torch_distributed_enabled": "true", "sagemaker_mpi_num_of_processes_per_host": str(procs)}
        (work / h / "input/config/hyperparameters.json").write_text(json.dumps(hps))
    env = dict(os.environ, SAGEMAKER_PROGRAM="prog.py", SMHOST_CONFIG=str(work / "smhost.ini"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("SMHOST_PLUGIN_PATH", None)
    if hold:
        env["HOLD"] = str(hold)
    if side == "smhost":
        inner = [str(SMHOST), "train"]
    else:
        inner = ["/bin/sh", "-c", f"exec torchrun --nnodes {hosts} --nproc_per_node {procs} --master_addr algo-1 "
                 f"--master_port 7777 --node_rank $((SMHOST_LOCAL_INDEX-1)) --redirects 1 --tee 1 "
                 f"/opt/ml/code/prog.py"]
    cmd = [str(SMHOST), "local", "cluster", "--hosts", str(hosts), "--bind", f"{work}/{{host}}:/opt/ml", "--",
           str(work / "wrapper.sh")] + inner
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"bench: {side} {hosts}x{procs} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    t0 = min(int((work / h / "output/data/t0").read_text()) for h in names)
    t1 = max(int((work / h / "output/data/t1").read_text()) for h in names)
    starts = []
    for h in names:
        starts += [int(f.read_text()) for f in (work / h / "output/data").glob("start-*")]
    assert len(starts) == hosts * procs, (side, starts)
    peaks = [work / h / "output/data/peak_kb" for h in names]
    peak = max(int(p.read_text()) for p in peaks) if all(p.exists() for p in peaks) else None
    return (max(starts) - t0) / 1e6, (t1 - t0) / 1e6, peak


def main():
    if os.geteuid() != 0:
        print("bench/distributed: skipped (simulated hosts need root here)")
        return
    have_torchrun = shutil.which("torchrun") is not None
    if not have_torchrun:
        print("bench/distributed: skipped (no torchrun: apt-get install python3-torch)")
        return
    work = Path(tempfile.mkdtemp(prefix="smhost-bench-dist."))
    try:
        (work / "smhost.ini").write_text("")
        (work / "wrapper.sh").write_text(WRAPPER)
        (work / "wrapper.sh").chmod(0o755)
        shapes = [(1, 2)] if QUICK else [(1, 2), (2, 2)]
        print(f"smhost distributed launcher vs torchrun ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
              f"median of {REPS}; ratio = smhost / torchrun)")
        for hosts, procs in shapes:
            res = {"smhost": {"start": [], "gloo": [], "peak": []}, "torchrun": {"start": [], "gloo": [], "peak": []}}
            for _ in range(REPS):
                for side in ("smhost", "torchrun"):
                    s, _, peak = run(work, side, hosts, procs, SLEEP, hold=1.0)
                    res[side]["start"].append(s)
                    res[side]["peak"].append(peak)
                    if not QUICK:
                        _, end, _ = run(work, side, hosts, procs, GLOO)
                        res[side]["gloo"].append(end)
            med = {side: {k: statistics.median(v) if v else None for k, v in d.items()} for side, d in res.items()}
            a, b = med["smhost"], med["torchrun"]
            print(f"{hosts}x{procs} start -> all ranks running: smhost {a['start']:.0f} ms, torchrun {b['start']:.0f} ms, "
                  f"ratio {a['start'] / b['start']:.3f}")
            if not QUICK:
                print(f"{hosts}x{procs} trivial gloo job, start -> end: smhost {a['gloo']:.0f} ms, torchrun "
                      f"{b['gloo']:.0f} ms, ratio {a['gloo'] / b['gloo']:.3f}")
            print(f"{hosts}x{procs} launcher peak RSS per host: smhost {a['peak'] / 1024:.1f} MiB, torchrun "
                  f"{b['peak'] / 1024:.1f} MiB, ratio {a['peak'] / b['peak']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
