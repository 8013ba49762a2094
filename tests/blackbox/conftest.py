"""Shared fixtures for black-box tests: they run the real build/bin/smhost against temporary ML roots.

SMHOST_BUILD names the build tree (default: <repo>/build); `make SAN=1 test-blackbox` points it at build/san.
Tests that the sanitizer build cannot run meaningfully (one measures the server's memory in a cgroup, where ASan's own
overhead would decide; shell-only and compile-only checks; the SDK install, which uses the normal build) carry the
`nosan` marker, with their reason beside it.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SMHOST_BUILD", REPO / "build")).resolve()
SMHOST = BUILD / "bin" / "smhost"
PLUGIN_DIR = BUILD / "lib" / "smhost" / "plugins"
TEST_PLUGIN_DIR = BUILD / "tests" / "plugins"
SANITIZED = "san" in BUILD.parts or os.environ.get("SMHOST_SANITIZED") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "nosan: skip when the binary is built with sanitizers")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config, items):
    if not SANITIZED:
        return
    skip = pytest.mark.skip(reason="not run against the sanitizer build")
    for item in items:
        if "nosan" in item.keywords:
            item.add_marker(skip)


class MLRoot:
    """A temporary /opt/ml tree with helpers to write its config files and code."""

    def __init__(self, path: Path):
        self.path = path
        for d in ("input/config", "input/data", "code", "model", "output"):
            (path / d).mkdir(parents=True, exist_ok=True)

    # -- config files -------------------------------------------------------------------------------------
    def write_json(self, rel, obj):
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return p

    def hyperparameters(self, hps, sdk_style=True):
        """sdk_style: JSON-encode each value as the SageMaker Python SDK does; else write values raw."""
        if sdk_style:
            hps = {k: json.dumps(v) for k, v in hps.items()}
        return self.write_json("input/config/hyperparameters.json", hps)

    def inputdataconfig(self, channels):
        if isinstance(channels, (list, tuple)):
            channels = {
                c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                for c in channels
            }
        for c in channels:
            (self.path / "input" / "data" / c).mkdir(parents=True, exist_ok=True)
        return self.write_json("input/config/inputdataconfig.json", channels)

    def resourceconfig(self, current_host="algo-1", hosts=("algo-1",), **extra):
        rc = {"current_host": current_host, "hosts": list(hosts)}
        rc.update(extra)
        return self.write_json("input/config/resourceconfig.json", rc)

    # -- code -------------------------------------------------------------------------------------------------
    def script(self, name, body, mode=0o755):
        p = self.path / "code" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body).lstrip("\n"))
        p.chmod(mode)
        return p

    # -- results ----------------------------------------------------------------------------------------------
    @property
    def success(self):
        return self.path / "output" / "success"

    @property
    def failure(self):
        return self.path / "output" / "failure"

    def failure_text(self):
        return self.failure.read_text() if self.failure.exists() else None


@pytest.fixture
def mlroot(tmp_path):
    return MLRoot(tmp_path / "ml")


def base_env(mlroot=None, **extra):
    """A minimal, predictable environment for smhost: no inherited SM_* or SAGEMAKER_* noise."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        # No system config unless a test writes one (a missing SMHOST_CONFIG file is an error).
        "SMHOST_CONFIG": str(EMPTY_INI),
        "SMHOST_PLUGIN_PATH": "",
    }
    if "ASAN_OPTIONS" in os.environ:
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    if mlroot is not None:
        env["SAGEMAKER_BASE_DIR"] = str(mlroot.path)
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


EMPTY_INI = Path(os.environ.get("TMPDIR", "/tmp")) / f"smhost-empty-{os.getpid()}.ini"
EMPTY_INI.write_text("")


def merged_env(mlroot=None, env=None):
    """base_env() with `env` on top; a value of None removes that variable."""
    e = base_env(mlroot)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def run_smhost(args, mlroot=None, env=None, timeout=60, input=None, **popen):
    """Run build/bin/smhost with args; returns CompletedProcess with text stdout/stderr."""
    e = merged_env(mlroot, env)
    return subprocess.run(
        [str(SMHOST), *args],
        env=e,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        **popen,
    )


def start_smhost(args, mlroot=None, env=None, **popen):
    """Start smhost in the background (for signal tests).  Returns the Popen."""
    e = merged_env(mlroot, env)
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace")
    kw.update(popen)
    return subprocess.Popen([str(SMHOST), *args], env=e, **kw)


@pytest.fixture
def smhost_bin():
    assert SMHOST.exists(), f"{SMHOST} is missing: run make first"
    return SMHOST


@pytest.fixture
def run(mlroot):
    """run(args..., env=...) with the test's ML root."""

    def _run(*args, env=None, timeout=60, root=None):
        return run_smhost(list(args), mlroot=root or mlroot, env=env, timeout=timeout)

    return _run


def dump_env_script(mlroot, name="train"):
    """An executable that records its argv, environment and cwd as JSON in <root>/model/seen.json.

    It is a Python program, not a shell script: dash drops environment names that are not shell identifiers
    (SM_HP_LEARNING-RATE), which would hide what smhost passed."""
    return mlroot.script(
        name,
        """
        #!/usr/bin/python3
        import json, os, sys
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()},
                  open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
        """,
    )


def seen(mlroot):
    return json.loads((mlroot.path / "model" / "seen.json").read_text())


@pytest.fixture(scope="session")
def s3srv():
    """A real S3 server, OpenStack Swift with s3api (tests/s3/swift_s3.py) on loopback, with bucket "bkt": one per
    test session, shared by test_s3.py and test_local.py."""
    if not shutil.which("swift-ring-builder"):
        pytest.fail("OpenStack Swift is not installed: run tools/deps.sh (Debian packages swift, swift-proxy, "
                    "swift-account, swift-container, swift-object)")
    sys.path.insert(0, str(REPO / "tests" / "s3"))
    import swift_s3
    import tempfile
    root = tempfile.mkdtemp(prefix="smhost-swift-")
    srv = swift_s3.SwiftS3(root)
    try:
        srv.start()
        srv.curl("PUT", "/bkt")
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
