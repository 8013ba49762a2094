"""The plugin ABI rules, checked against the real loader with the test plugins of tests/plugins/ (built by
`make test-programs` into <build>/tests/plugins/).

Each test copies the plugins it wants into a temporary directory named by SMHOST_PLUGIN_PATH.
"""
import re
import shutil

import pytest

from conftest import REPO, TEST_PLUGIN_DIR

ALL = ["good_runner", "older_minor", "v1_0_frozen", "wrong_major", "newer_minor", "oversized", "no_entry",
       "init_fails", "init_crashes"]


def header_abi():
    text = (REPO / "sdk" / "include" / "smhost" / "plugin.h").read_text()
    major = int(re.search(r"#define SMH_ABI_MAJOR (\d+)", text).group(1))
    minor = int(re.search(r"#define SMH_ABI_MINOR (\d+)", text).group(1))
    return major, minor


@pytest.fixture
def plugdir(tmp_path):
    """plugdir(*names): a directory holding copies of those test plugins; returns its path as a string."""

    def _make(*names):
        d = tmp_path / "plugins"
        d.mkdir(exist_ok=True)
        for n in names:
            src = TEST_PLUGIN_DIR / f"{n}.so"
            assert src.exists(), f"{src} missing: run make test-programs"
            shutil.copy(src, d / src.name)
        return str(d)

    return _make


def sections(text, names):
    """Split `smhost plugins` output into the lines about each plugin (a line naming exactly one of `names`
    starts that plugin's section; a line naming another .so ends it)."""
    out = {n: [] for n in names}
    cur = None
    for line in text.splitlines():
        hits = [n for n in names if re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", line)]
        if len(hits) == 1:
            cur = hits[0]
        elif len(hits) > 1 or ".so" in line:
            cur = None
        if cur:
            out[cur].append(line)
    return {n: "\n".join(v) for n, v in out.items()}


@pytest.fixture
def listing(plugdir, run):
    r = run("plugins", env={"SMHOST_PLUGIN_PATH": plugdir(*ALL)})
    text = r.stdout + r.stderr
    return r, text, sections(text, ALL)


@pytest.mark.parametrize("name", ["good_runner", "older_minor", "v1_0_frozen", "init_fails", "init_crashes"])
def test_plugins_lists_loadable(listing, name):
    """Descriptors the host accepts.  (`smhost plugins` may also try init() in a child and report its failure:
    init_fails and init_crashes are only checked for their descriptor here.)"""
    _, text, sec = listing
    s = sec[name]
    assert s, f"{name} not in:\n{text}"
    if not name.startswith("init_"):
        assert "refused" not in s.lower(), s
    assert f"{name}.so" in s, s  # the path
    assert "runner" in s.lower(), s  # the kind
    major, minor = header_abi()
    # the plugin's ABI: v1_0_frozen is built against the frozen 1.0 header, older_minor claims the minor before the
    # header's, the others the header's own
    want = "1.0" if name == "v1_0_frozen" else f"{major}.{max(minor - 1, 0)}" if name == "older_minor" else f"{major}.{minor}"
    assert f"ABI {want}" in s, s


def test_plugins_shows_versions(listing):
    _, _, sec = listing
    assert "0.1-test" in sec["good_runner"]
    assert "1.0-frozen" in sec["v1_0_frozen"]


@pytest.mark.parametrize(
    "name,plugin_abi",
    [("wrong_major", lambda ma, mi: f"{ma + 1}.{mi}"), ("newer_minor", lambda ma, mi: f"{ma}.{mi + 1}")],
)
def test_plugins_refuses_other_versions(listing, name, plugin_abi):
    _, text, sec = listing
    major, minor = header_abi()
    s = sec[name]
    assert s, f"{name} not in:\n{text}"
    assert "refused" in s.lower(), s
    assert f"{name}.so" in s, s
    assert plugin_abi(major, minor) in s, s  # the plugin's version
    assert f"{major}.{minor}" in s, s  # the host's version


def test_plugins_refuses_oversized_descriptor(listing):
    _, text, sec = listing
    s = sec["oversized"]
    assert s, f"oversized not in:\n{text}"
    assert "refused" in s.lower(), s
    assert "oversized.so" in s, s
    assert re.search(r"size|larger|bytes", s), s


def test_plugins_refuses_missing_entry(listing):
    _, text, sec = listing
    s = sec["no_entry"]
    assert s, f"no_entry not in:\n{text}"
    assert "refused" in s.lower(), s
    assert "no_entry.so" in s and "smh_plugin_entry" in s, s


# ---- jobs through test plugins -----------------------------------------------------------------------------------

def job(mlroot, run, plugdir, plugin, ext, hps=None, env=None):
    prog = mlroot.script(f"train{ext}", "anything\n", mode=0o644)
    if hps is not None:
        mlroot.hyperparameters(hps)
    e = {"SMHOST_PLUGIN_PATH": plugdir(plugin), "SAGEMAKER_PROGRAM": prog.name}
    e.update(env or {})
    return run("train", env=e), prog


def marker(mlroot, name):
    p = mlroot.path / "model" / f"{name}.txt"
    return p.read_text() if p.exists() else None


@pytest.mark.parametrize("plugin,ext", [("good_runner", ".good"), ("older_minor", ".olderminor")])
def test_job_runs_through_plugin(mlroot, run, plugdir, plugin, ext):
    r, prog = job(mlroot, run, plugdir, plugin, ext, hps={"exit_code": 0, "alpha": 1})
    assert r.returncode == 0, r.stderr
    m = marker(mlroot, plugin)
    assert m is not None, r.stderr
    assert m.startswith(f"{plugin} ran {prog}\n"), m
    assert "arg --alpha\narg 1\n" in m
    assert mlroot.success.exists()


def test_runner_return_value_is_exit_code(mlroot, run, plugdir):
    r, _ = job(mlroot, run, plugdir, "good_runner", ".good", hps={"exit_code": 7})
    assert r.returncode == 7, r.stderr
    assert marker(mlroot, "good_runner") is not None
    assert mlroot.failure.exists()


def test_v1_0_frozen_plugin_runs(mlroot, run, plugdir):
    major, minor = header_abi()
    mlroot.inputdataconfig(["train", "test"])
    mlroot.resourceconfig()
    r, prog = job(mlroot, run, plugdir, "v1_0_frozen", ".v10frozen",
                  hps={"epochs": 3, "lr": 0.5, "flag": True, "name": "x", "sagemaker_probe": "abc"},
                  env={"V10_PROBE": "42"})
    assert r.returncode == 0, r.stderr
    assert "v1_0_frozen exec ok" in r.stdout  # it ended in host->exec()
    lines = marker(mlroot, "v1_0_frozen").splitlines()
    root, data = mlroot.path, mlroot.path / "input" / "data"
    expect = [
        f"host_abi={major}.{minor}",
        f"root={root}", f"model={root / 'model'}", f"output_data={root / 'output' / 'data'}",
        f"code={root / 'code'}", f"program={prog}",
        "arg=--epochs", "arg=3", "arg=--lr", "arg=0.5", "arg=--flag", "arg=True",
        "environ_nonempty=1", "getenv=42",
        "hp epochs type=int str=3 json=3", "hp flag type=bool str=True json=true",
        "hp lr type=float str=0.5 json=0.5", 'hp name type=string str=x json="x"',
        "hp_int64(epochs)=0 3", "hp_double(lr)=0 0.5", "hp_bool(flag)=0 1",
        "hp_int64(missing)=-4",  # SMH_E_NOTFOUND
        "hp_int64(lr)=-6",  # SMH_E_TYPE
        "framework_param(sagemaker_probe)=0 abc",
        f"channel test {data / 'test'}", f"channel train {data / 'train'}", "channel_dir(nope)=(null)",
        "host algo-1", "current_host=algo-1", "master_host=algo-1", "is_master=1", "cpus_positive=1",
        "cancel_requested=0", "spawn_wait(true)=0 0", "spawn_wait(false)=0 1",
        "resp_write=-5", "resp_set_status=-5", "resp_set_content_type=-5",  # SMH_E_UNSUPPORTED: no response
        "resp_set_custom_attributes=-5",
    ]
    missing = [e for e in expect if e not in lines]
    assert not missing, "\n".join(lines)


def test_v1_0_frozen_reporting_calls(mlroot, run, plugdir):
    """set_failure(), set_command() and program_starting() at their v1.0 places: the plugin sets a reason, then its
    exec() fails, so the job fails with that reason as a user program's failure (127: not found)."""
    mlroot.resourceconfig()
    r, _ = job(mlroot, run, plugdir, "v1_0_frozen", ".v10frozen", env={"V10_EXEC_MISSING": "/nonexistent/v10-prog"})
    assert r.returncode == 127, r.stderr
    text = mlroot.failure_text()
    assert "v1_0_frozen set_failure reason" in text, text
    assert "ExecuteUserScriptError" in text, text


def test_init_failure_is_reported(mlroot, run, plugdir):
    r, _ = job(mlroot, run, plugdir, "init_fails", ".initfails")
    assert r.returncode != 0
    assert marker(mlroot, "init_fails") is None
    text = (mlroot.failure_text() or "") + r.stderr
    assert "widget service is not configured" in text, text


def test_init_crash_is_caught(mlroot, run, plugdir):
    r, _ = job(mlroot, run, plugdir, "init_crashes", ".initcrashes")
    assert r.returncode > 0  # smhost itself was not killed
    assert marker(mlroot, "init_crashes") is None
    assert mlroot.failure.exists()
    assert "init_crashes" in mlroot.failure_text() + r.stderr


@pytest.mark.parametrize("plugin,ext", [("wrong_major", ".wrongmajor"), ("newer_minor", ".newerminor"),
                                        ("oversized", ".oversized")])
def test_refused_plugin_never_runs(mlroot, run, plugdir, plugin, ext):
    r, _ = job(mlroot, run, plugdir, plugin, ext)
    assert r.returncode != 0
    assert marker(mlroot, plugin) is None
    assert not mlroot.success.exists()


# ---- ABI 1.1: device backends -------------------------------------------------------------------------------------

def test_v1_1_backend_loads_beside_v1_0_plugins(plugdir, run):
    """A backend built against the 1.1 header (it uses the slot that was reserved[0] in 1.0) loads; a runner built
    against the frozen 1.0 header still loads; a 1.0 descriptor that claims the backend kind, which had no ops table
    in 1.0, is refused with a message naming 1.1."""
    major, minor = header_abi()
    assert (major, minor) >= (1, 1)
    names = ["testdev_backend", "v1_0_frozen", "v1_0_backend"]
    r = run("plugins", env={"SMHOST_PLUGIN_PATH": plugdir(*names)})
    sec = sections(r.stdout + r.stderr, ["testdev", "v1_0_frozen", "v1_0_backend"])
    assert "backend" in sec["testdev"] and f"ABI {major}.{minor}" in sec["testdev"], sec["testdev"]
    assert "refused" not in sec["testdev"].lower(), sec["testdev"]
    assert "ABI 1.0" in sec["v1_0_frozen"] and "refused" not in sec["v1_0_frozen"].lower()
    assert "refused" in sec["v1_0_backend"].lower() and "1.1" in sec["v1_0_backend"], sec["v1_0_backend"]


# ---- ABI 1.1: launchers -----------------------------------------------------------------------------------------

def test_v1_1_launcher_loads_and_v1_0_launcher_kind_is_refused(plugdir, run):
    """A launcher built against the 1.1 header (it uses the slot that was reserved[1] in 1.0) loads; a 1.0
    descriptor claiming the launcher kind, which had no ops table in 1.0, is refused with a message naming 1.1;
    the frozen 1.0 runner still loads beside them."""
    names = ["testxla_launcher", "v1_0_launcher", "v1_0_frozen"]
    r = run("plugins", env={"SMHOST_PLUGIN_PATH": plugdir(*names)})
    sec = sections(r.stdout + r.stderr, ["testxla", "v1_0_launcher", "v1_0_frozen"])
    assert "launcher" in sec["testxla"] and "refused" not in sec["testxla"].lower(), sec["testxla"]
    assert "refused" in sec["v1_0_launcher"].lower() and "1.1" in sec["v1_0_launcher"], sec["v1_0_launcher"]
    assert "refused" not in sec["v1_0_frozen"].lower(), sec["v1_0_frozen"]


def test_third_party_launcher_runs_the_flag_smhost_lacks(mlroot, run, plugdir):
    """An installed launcher plugin takes a distribution flag smhost ships none for: its processes run through the
    ordinary runner, with its variables, and a variable the user set is never overwritten."""
    mlroot.hyperparameters({"sagemaker_pytorch_xla_multi_worker_enabled": True,
                            "sagemaker_mpi_num_of_processes_per_host": 2})
    mlroot.script("train.sh", 'echo "$TESTXLA_RANK $TESTXLA_WORLD $XLA_TEST_USER" > '
                              f'{mlroot.path}/model/xla-$TESTXLA_RANK\n')
    r = run("train", env={"SMHOST_PLUGIN_PATH": plugdir("testxla_launcher"), "SAGEMAKER_PROGRAM": "train.sh",
                          "XLA_TEST_USER": "mine"})
    assert r.returncode == 0, r.stderr
    for i in range(2):
        assert (mlroot.path / "model" / f"xla-{i}").read_text().split() == [str(i), "2", "mine"]
    assert "[" in r.stdout + r.stderr and "rank 1]" in r.stdout + r.stderr
