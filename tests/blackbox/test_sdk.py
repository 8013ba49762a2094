"""The SDK as a third party sees it: `make install` into a temporary root, then build the out-of-tree samples with
pkg-config alone and run jobs through the installed smhost."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, MLRoot, base_env

pytestmark = pytest.mark.nosan  # installs the normal build; running it twice proves nothing more


def clean_env(**extra):
    """The environment for nested makes: no MAKEFLAGS from an outer `make test` (SAN=1, jobserver fds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("destdir")
    subprocess.run(["make", "-s", "-C", str(REPO), "install", f"DESTDIR={root}", "PREFIX=/usr"],
                   check=True, capture_output=True, text=True, env=clean_env())
    pc_env = clean_env(PKG_CONFIG_PATH="", PKG_CONFIG_LIBDIR=str(root / "usr/lib/pkgconfig"),
                       PKG_CONFIG_SYSROOT_DIR=str(root))
    return root, pc_env


def test_install_layout(installed):
    root, pc_env = installed
    for rel in ("usr/bin/smhost", "usr/include/smhost/plugin.h", "usr/include/smhost/trainer.h",
                "usr/lib/pkgconfig/smhost.pc", "usr/lib/smhost/plugins/native.so"):
        assert (root / rel).exists(), rel
    pc = (root / "usr/lib/pkgconfig/smhost.pc").read_text()
    assert "prefix=/usr" in pc and "@" not in pc
    cflags = subprocess.run(["pkg-config", "--cflags", "smhost"], env=pc_env, capture_output=True, text=True,
                            check=True).stdout.split()
    assert cflags == [f"-I{root}/usr/include"]
    version = subprocess.run(["pkg-config", "--modversion", "smhost"], env=pc_env, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert version and version[0].isdigit()


def job_env(mlroot, program, **extra):
    env = base_env(mlroot, SAGEMAKER_PROGRAM=program)
    env.update(extra)
    return env


def test_plugin_hello_out_of_tree(installed, tmp_path):
    root, pc_env = installed
    src = tmp_path / "plugin-hello"
    shutil.copytree(REPO / "samples" / "plugin-hello", src)  # really out of the tree: no ../../sdk to lean on
    plugindir = "/usr/lib/smhost/plugins"
    subprocess.run(["make", "-s", "-C", str(src), "install", f"DESTDIR={root}", f"PLUGINDIR={plugindir}"],
                   check=True, capture_output=True, text=True, env=pc_env)
    assert (root / "usr/lib/smhost/plugins/hello.so").exists()

    smhost = str(root / "usr/bin/smhost")
    r = subprocess.run([smhost, "plugins"], env=base_env(), capture_output=True, text=True, timeout=60)
    assert "hello" in r.stdout + r.stderr

    ml = MLRoot(tmp_path / "ml")
    (ml.path / "code" / "greet.hello").write_text("Hello\nGood morning\n")
    ml.hyperparameters({"shout": True, "epochs": 2})
    ml.inputdataconfig(["train"])
    ml.resourceconfig()
    r = subprocess.run([smhost, "train"], env=job_env(ml, "greet.hello"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = (ml.path / "model" / "hello.txt").read_text().splitlines()
    assert lines[:2] == ["HELLO, algo-1!", "GOOD MORNING, algo-1!"]
    assert "hyperparameter: epochs=2" in lines and "channel: train" in lines and "greetings: 2" in lines
    assert ml.success.exists()

    ml2 = MLRoot(tmp_path / "ml2")
    (ml2.path / "code" / "greet.hello").write_text("Hello\n")
    ml2.hyperparameters({"fail_with": "no greetings today"})
    r = subprocess.run([smhost, "train"], env=job_env(ml2, "greet.hello"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "no greetings today" in ml2.failure_text()


def test_native_trainer_against_installed_sdk(installed, tmp_path):
    """The linreg sample built the way its comment says, with only the installed headers."""
    np = pytest.importorskip("numpy")
    root, pc_env = installed
    cflags = subprocess.run(["pkg-config", "--cflags", "smhost"], env=pc_env, capture_output=True, text=True,
                            check=True).stdout.split()
    lib = tmp_path / "liblinreg.so"
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror", "-shared", "-fPIC",
                    "-fvisibility=hidden", *cflags, "-o", str(lib), str(REPO / "samples/native-linreg/linreg.c"),
                    "-lm"], check=True, capture_output=True, text=True)
    ml = MLRoot(tmp_path / "ml")
    ml.inputdataconfig(["train"])
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2))
    y = -1.0 + X @ [0.5, 4.0]
    np.savetxt(ml.path / "input/data/train/d.csv", np.c_[X, y], delimiter=",")
    shutil.copy(lib, ml.path / "code" / lib.name)
    r = subprocess.run([str(root / "usr/bin/smhost"), "train"], env=job_env(ml, lib.name), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    model = json.loads((ml.path / "model/model.json").read_text())
    assert np.allclose([model["intercept"], *model["coefficients"]], [-1.0, 0.5, 4.0], atol=1e-9)
