"""Helpers for the `smhost local` tests: can this machine simulate hosts, and as whom."""
import os
import shutil
import subprocess

from conftest import SMHOST


def cluster_unavailable(user=None):
    """None when `smhost local cluster` works here (as root, or as `user` via setpriv), else the reason."""
    cmd = [str(SMHOST), "local", "cluster", "--hosts", "1", "--", "true"]
    if user is not None:
        if os.geteuid() != 0:
            return "switching to another user needs root"
        if not shutil.which("setpriv"):
            return "setpriv (util-linux) is missing"
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    elif os.geteuid() != 0:
        cmd = cmd  # a normal user: the user-namespace path
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    return f"the kernel refuses the namespaces (exit {p.returncode}): {p.stderr.strip()}"


def wait_until_hosts_print(proc, word, hosts):
    """Read proc's stdout until `hosts` hosts have printed a line `word` (prefixed `algo-N | `); fails with stderr
    when the output ends first."""
    seen = 0
    while seen < hosts:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        seen += line.endswith(f"| {word}\n")
