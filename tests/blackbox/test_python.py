"""The Python runner (plugins/python exec()ing /usr/bin/python3 with lib/smhost/internal/pyboot.so preloaded): scripts,
packages, modules, SAGEMAKER_TRAINING_MODULE, `import smhost`, exceptions and exit codes, signals,
subprocess/multiprocessing, C extensions, requirements.txt installs.

Every test runs the real build/bin/smhost.  pip never touches the system: installs go to a per-test
PYTHONUSERBASE (PIP_USER=1), offline (PIP_NO_INDEX=1) from wheels the test builds itself.
"""
import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

import shutil

from conftest import BUILD, SANITIZED, SMHOST, seen, dump_env_script, run_smhost

PY = "/usr/bin/python3"


def record(name="seen.json"):
    """Python source that stores argv, environment and interpreter facts in <model>/<name>."""
    return textwrap.dedent(f"""
    import json, os, sys
    json.dump({{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(), "path0": sys.path[0],
               "executable": sys.executable, "name": __name__,
               "write_through": getattr(sys.stdout, "write_through", None)}},
              open(os.path.join(os.environ["SM_MODEL_DIR"], {name!r}), "w"))
    """)


def load(mlroot, name="seen.json"):
    return json.loads((mlroot.path / "model" / name).read_text())


def py_env(prog, **extra):
    env = {"SAGEMAKER_PROGRAM": prog}
    env.update(extra)
    return env


def ml_userbase(tmp_path, **extra):
    """pip settings that keep every install inside the test's directory, offline."""
    env = {
        "PIP_USER": "1",
        "PYTHONUSERBASE": str(tmp_path / "userbase"),
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted spelling of --no-build-isolation: no index to fetch from
    }
    env.update(extra)
    return env


def build_wheel(tmp_path, name, version="0.1", body="VALUE = 42\n"):
    """A tiny pure-Python wheel built here with Debian's setuptools and wheel; returns the wheel directory."""
    src = tmp_path / f"src-{name}"
    (src / name).mkdir(parents=True)
    (src / "setup.py").write_text(f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                                  f"packages=[{name!r}])\n")
    (src / name / "__init__.py").write_text(body)
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    subprocess.run([PY, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert list(wheels.glob(f"{name}-{version}-*.whl"))
    return wheels


def error_message(text):
    """The ErrorMessage "..." part of output/failure."""
    start = text.index('ErrorMessage "') + len('ErrorMessage "')
    end = text.rindex('"\nCommand') if '"\nCommand' in text else text.rindex('"')
    return text[start:end]


# ---- argv, environment, interpreter configuration ---------------------------------------------------------

# Contract section 2 vectors: hyperparameters.json (as written) -> the program's argv.
ARGV_VECTORS = [
    ({"da-sh": "1", "un_der": "2", "un-sh": "3", "da_der": "2"},
     ["--da-sh", "1", "--da_der", "2", "--un-sh", "3", "--un_der", "2"]),
    ({"U": "1", "b": "2", "T": "", "": "42"}, ["", "42", "-T", "", "-U", "1", "-b", "2"]),
    ({"nested": json.dumps(["1", ["2", "3", [["6"]]]])}, ["--nested", "['1', ['2', '3', [['6']]]]"]),
    ({"map": json.dumps({"a": [1, 3, 4]}), "channel_dirs": json.dumps({"train": "foo", "eval": "bar"})},
     ["--channel_dirs", "eval=bar,train=foo", "--map", "a=[1, 3, 4]"]),
    ({"truthy": "true", "falsy": "false"}, ["--falsy", "False", "--truthy", "True"]),
    ({"floats": "4.0", "int": "2"}, ["--floats", "4.0", "--int", "2"]),
]


@pytest.mark.parametrize("hps,expected", ARGV_VECTORS)
def test_argv_contract_vectors(mlroot, run, hps, expected):
    mlroot.hyperparameters(hps, sdk_style=False)
    script = mlroot.script("train.py", record())
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 0, r.stderr
    s = load(mlroot)
    assert s["argv"] == [str(script), *expected]


def test_environment_matches_the_exec_runner(mlroot, run):
    """What Python sees (os.environ, argv, cwd) is exactly what an executable started by exec() sees."""
    mlroot.hyperparameters({"lr": 0.1, "optimizer": "adam", "layers": [1, 2], "flag": True, "learning-rate": 2})
    mlroot.inputdataconfig(["train", "test"])
    mlroot.resourceconfig()
    dump_env_script(mlroot, "dump")
    r = run("train", env={"SAGEMAKER_PROGRAM": "dump", "MY_VAR": "x y"})
    assert r.returncode == 0, r.stderr
    other = seen(mlroot)
    mlroot.script("train.py", record())
    r = run("train", env={"SAGEMAKER_PROGRAM": "train.py", "MY_VAR": "x y"})
    assert r.returncode == 0, r.stderr
    py = load(mlroot)
    differ = {k for k in set(other["env"]) | set(py["env"]) if other["env"].get(k) != py["env"].get(k)}
    differ -= {"SAGEMAKER_PROGRAM", "SM_USER_ENTRY_POINT", "SM_MODULE_NAME", "SM_TRAINING_ENV"}  # the program
    assert differ == set()
    assert py["env"]["SM_HPS"] == '{"flag":true,"layers":[1,2],"learning-rate":2,"lr":0.1,"optimizer":"adam"}'
    assert py["env"]["SM_HP_LEARNING-RATE"] == "2"
    assert py["env"]["SM_CHANNEL_TRAIN"] == str(mlroot.path / "input" / "data" / "train")
    assert py["env"]["MY_VAR"] == "x y"
    assert py["argv"][1:] == other["argv"]
    assert py["cwd"] == other["cwd"] == str(mlroot.path / "code")


def test_interpreter_is_configured_like_python3(mlroot, run):
    mlroot.script("train.py", record())
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 0, r.stderr
    s = load(mlroot)
    code = str(mlroot.path / "code")
    assert s["name"] == "__main__"
    assert s["executable"] == PY
    assert s["path0"] == code and s["cwd"] == code
    assert s["write_through"] is True  # unbuffered by default
    assert (mlroot.path / "output" / "success").exists()


def test_unbuffered_can_be_turned_off_and_python_vars_are_honoured(mlroot, run):
    mlroot.script("train.py", record() + "\nimport sys; open(os.environ['SM_MODEL_DIR'] + '/flags', 'w')"
                  ".write(str(sys.flags.dont_write_bytecode))\n")
    r = run("train", env=py_env("train.py", PYTHONUNBUFFERED="", PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0, r.stderr
    assert load(mlroot)["write_through"] is False
    assert (mlroot.path / "model" / "flags").read_text() == "1"


def test_pythonsafepath_drops_sys_path0_for_scripts_and_the_training_module(mlroot, run):
    """smhost's PYTHONPATH names the code dir too, so sys.path holds it twice, unless PYTHONSAFEPATH drops the
    first (the script's directory, or the working directory for the training module), as in python3."""
    code = str(mlroot.path / "code")
    dump = "import json, os, sys\njson.dump(sys.path, open(os.environ['SM_MODEL_DIR'] + '/path.json', 'w'))\n"
    mlroot.script("train.py", dump)
    (mlroot.path / "code" / "fw5.py").write_text("def main():\n" + textwrap.indent(dump, "    "))
    for env, count in ((py_env("train.py"), 2), (py_env("train.py", PYTHONSAFEPATH="1"), 1),
                       ({"SAGEMAKER_TRAINING_MODULE": "fw5:main"}, 2),
                       ({"SAGEMAKER_TRAINING_MODULE": "fw5:main", "PYTHONSAFEPATH": "1"}, 1)):
        r = run("train", env=env)
        assert r.returncode == 0, r.stderr
        path = json.loads((mlroot.path / "model" / "path.json").read_text())
        assert path.count(code) == count and path[0] == code, (env, path)


@pytest.mark.parametrize("body,code,reason", [
    ("import sys\nsys.exit(4)\n", 4, None),
    ("import sys\nsys.exit('no data')\n", 1, "no data"),
    ("raise KeyError('k')\n", 1, "KeyError: 'k'"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n", 130, "KeyboardInterrupt"),
])
def test_training_module_exits_like_python3_c(mlroot, run, body, code, reason):
    (mlroot.path / "code" / "fw6.py").write_text("def main():\n" + textwrap.indent(body, "    "))
    r = run("train", env={"SAGEMAKER_TRAINING_MODULE": "fw6:main"})
    assert r.returncode == code, r.stderr
    if reason:
        assert error_message(mlroot.failure_text()).startswith(reason)


def test_keyboard_interrupt_is_the_failure_reason(mlroot, run):
    mlroot.script("train.py", "import os, signal\ndef stop():\n    os.kill(os.getpid(), signal.SIGINT)\nstop()\n")
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 130
    msg = error_message(mlroot.failure_text())
    assert msg.startswith("KeyboardInterrupt") and "in stop" in msg


def test_output_is_not_lost_or_reordered(mlroot, run):
    mlroot.script("train.py", """
        import sys
        for i in range(3):
            print("out", i)
            print("err", i, file=sys.stderr)
        """)
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-3:] == ["out 0", "out 1", "out 2"]
    assert [l for l in r.stderr.splitlines() if l.startswith("err ")] == ["err 0", "err 1", "err 2"]


# ---- exceptions and exit codes ------------------------------------------------------------------------------

def test_uncaught_exception_is_the_failure_reason(mlroot, run):
    mlroot.script("train.py", """
        def check(lr):
            if lr <= 0:
                raise ValueError("learning rate must be positive")

        def main():
            check(-1)

        main()
        """)
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 1
    assert "Traceback (most recent call last):" in r.stderr  # printed as python3 prints it
    assert "ValueError: learning rate must be positive" in r.stderr
    msg = error_message(mlroot.failure_text())
    assert msg.startswith("ValueError: learning rate must be positive\n  File ")
    assert 'line 3, in check' in msg and "in main" in msg
    assert msg.index("in main") < msg.index("in check")  # traceback order, innermost last


def test_huge_exception_fits_the_budget_with_the_innermost_frame(mlroot, run):
    mlroot.script("train.py", """
        class DataError(Exception):
            pass

        def inner(depth):
            if depth == 0:
                raise DataError("é" * 3000)
            inner(depth - 1)

        inner(40)
        """)
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 1
    text = mlroot.failure_text()
    assert len(text.encode()) <= 1024
    msg = error_message(text)
    assert msg.startswith("DataError: éé")  # as python3 prints it
    assert "in inner" in msg
    text.encode("utf-8")  # valid UTF-8 throughout (read_text would have failed otherwise)


@pytest.mark.parametrize("code,expected", [("3", 3), ("0", 0), ("None", 0), ("256 + 7", 7), ("-1", 255)])
def test_sys_exit_code(mlroot, run, code, expected):
    mlroot.script("train.py", f"import sys\nsys.exit({code})\n")
    r = run("train", env=py_env("train.py"))
    assert r.returncode == expected, r.stderr
    assert mlroot.success.exists() == (expected == 0)


def test_sys_exit_with_a_message_prints_it_and_exits_1(mlroot, run):
    mlroot.script("train.py", "import sys\nsys.exit('no training data in the train channel')\n")
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 1
    assert "no training data in the train channel" in r.stderr
    assert "Traceback" not in r.stderr
    assert "no training data in the train channel" in error_message(mlroot.failure_text())


def test_keyboard_interrupt_on_sigint_exits_130(mlroot, run):
    mlroot.script("train.py", """
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)
        """)
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 130
    assert "KeyboardInterrupt" in r.stderr


def test_syntax_error_is_reported(mlroot, run):
    mlroot.script("train.py", "def broken(:\n    pass\n")
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 1
    assert "SyntaxError" in error_message(mlroot.failure_text())


# ---- signals, subprocess, multiprocessing, C extensions -------------------------------------------------------

def test_sigterm_reaches_the_python_handler(mlroot, smhost_bin):
    from conftest import start_smhost
    mlroot.script("train.py", """
        import os, signal, sys, time
        def on_term(signum, frame):
            open(os.path.join(os.environ["SM_MODEL_DIR"], "checkpoint"), "w").write("saved on %d" % signum)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(30)
        """)
    p = start_smhost(["train"], mlroot=mlroot, env=py_env("train.py"))
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "ready" not in line and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line and p.poll() is not None:
                break
        assert "ready" in line, p.stderr.read()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (mlroot.path / "model" / "checkpoint").read_text() == f"saved on {int(signal.SIGTERM)}"


def test_subprocess_and_multiprocessing_from_user_code(mlroot, run):
    mlroot.script("train.py", """
        import json, multiprocessing as mp, os, subprocess, sys

        def square(x):
            return x * x

        if __name__ == "__main__":
            out = {}
            out["sub"] = subprocess.run([sys.executable, "-c", "import sys; print(sys.version_info[:2])"],
                                        capture_output=True, text=True, check=True).stdout.strip()
            for method in ("spawn", "fork", "forkserver"):
                with mp.get_context(method).Pool(2) as pool:
                    out[method] = pool.map(square, [1, 2, 3])
            json.dump(out, open(os.path.join(os.environ["SM_MODEL_DIR"], "mp.json"), "w"))
        """)
    r = run("train", env=py_env("train.py"), timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads((mlroot.path / "model" / "mp.json").read_text())
    assert out["sub"] == "(3, 11)"
    assert out["spawn"] == out["fork"] == out["forkserver"] == [1, 4, 9]


def test_numpy_and_sklearn_import_and_work(mlroot, run):
    mlroot.script("train.py", """
        import os
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        X = np.array([[0.0], [1.0], [2.0], [3.0]])
        y = np.array([0, 0, 1, 1])
        m = LogisticRegression().fit(X, y)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "pred"), "w").write(str(m.predict([[0.1], [2.9]]).tolist()))
        """)
    r = run("train", env=py_env("train.py"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model" / "pred").read_text() == "[0, 1]"


# ---- packages, modules, SAGEMAKER_TRAINING_MODULE -------------------------------------------------------------

def test_package_with_setup_py_is_installed_and_run_as_module(mlroot, run, tmp_path):
    code = mlroot.path / "code"
    (code / "setup.py").write_text("from setuptools import setup\n"
                                   "setup(name='smhpkgdemo', version='1.0', packages=['helpers'], py_modules=[])\n")
    (code / "helpers").mkdir()
    (code / "helpers" / "__init__.py").write_text("GREETING = 'hi'\n")
    mlroot.script("train.py", record() + "\nimport helpers\nassert helpers.GREETING == 'hi'\n")
    mlroot.hyperparameters({"epochs": 2})
    r = run("train", env=py_env("train.py", **ml_userbase(tmp_path)), timeout=120)
    assert r.returncode == 0, r.stderr
    s = load(mlroot)
    assert s["name"] == "__main__"
    assert s["argv"] == [str(code / "train.py"), "--epochs", "2"]  # python -m train: argv[0] is the file
    assert s["path0"] == str(code)
    installed = list((tmp_path / "userbase").glob("lib/python3*/site-packages/smhpkgdemo-1.0*"))
    assert installed, r.stderr


def test_failed_package_install_is_a_clear_failure(mlroot, run, tmp_path):
    (mlroot.path / "code" / "setup.py").write_text("raise SystemExit('broken setup.py')\n")
    mlroot.script("train.py", "print('never runs')\n")
    r = run("train", env=py_env("train.py", **ml_userbase(tmp_path)), timeout=120)
    assert r.returncode != 0
    assert "never runs" not in r.stdout
    assert "InstallModuleError" in mlroot.failure_text()


def test_package_install_honours_break_system_packages(mlroot, run, tmp_path):
    """The python plugin's `pip install .` uses the host's pip environment (host API pip_environ), so
    [python] break_system_packages = false reaches it as it reaches requirements.txt installs."""
    if not os.path.exists("/usr/lib/python3.11/EXTERNALLY-MANAGED"):
        pytest.skip("this Python is not marked externally managed")
    code = mlroot.path / "code"
    (code / "setup.py").write_text("from setuptools import setup\nsetup(name='smhpkgoff', version='1.0', py_modules=[])\n")
    mlroot.script("train.py", "print('never runs')\n")
    ini = tmp_path / "smhost.ini"
    ini.write_text("[python]\nbreak_system_packages = false\n")
    r = run("train", env=py_env("train.py", PIP_NO_INDEX="1", SMHOST_CONFIG=str(ini)), timeout=120)
    assert r.returncode != 0
    assert "never runs" not in r.stdout
    assert "externally-managed-environment" in r.stderr + r.stdout, r.stderr
    assert "InstallModuleError" in mlroot.failure_text()


@pytest.mark.parametrize("prog", ["mypkg.entry", "module:mypkg.entry"])
def test_module_given_as_the_program(mlroot, run, prog):
    code = mlroot.path / "code"
    (code / "mypkg").mkdir()
    (code / "mypkg" / "__init__.py").write_text("")
    (code / "mypkg" / "entry.py").write_text(record())
    mlroot.hyperparameters({"lr": 0.5})
    r = run("train", env=py_env(prog))
    assert r.returncode == 0, r.stderr
    s = load(mlroot)
    assert s["name"] == "__main__"
    assert s["argv"] == [str(code / "mypkg" / "entry.py"), "--lr", "0.5"]
    assert s["path0"] == str(code)


def test_missing_module_fails_like_python3(mlroot, run):
    r = run("train", env=py_env("module:no_such_pkg.train"))
    assert r.returncode == 1
    assert "No module named 'no_such_pkg'" in r.stderr


def test_sagemaker_training_module_is_imported_and_called(mlroot, run):
    code = mlroot.path / "code"
    (code / "myframework").mkdir()
    (code / "myframework" / "__init__.py").write_text("")
    (code / "myframework" / "training.py").write_text(
        "import json, os, sys\n"
        "def main():\n"
        "    json.dump({'argv': sys.argv, 'module': os.environ.get('SM_FRAMEWORK_MODULE'),\n"
        "               'program': os.environ.get('SM_USER_ENTRY_POINT')},\n"
        "              open(os.path.join(os.environ['SM_MODEL_DIR'], 'fw.json'), 'w'))\n")
    mlroot.script("train.py", "raise SystemExit('the framework runs the user script, not smhost')\n")
    r = run("train", env=py_env("train.py", SAGEMAKER_TRAINING_MODULE="myframework.training:main"))
    assert r.returncode == 0, r.stderr
    fw = json.loads((mlroot.path / "model" / "fw.json").read_text())
    assert fw["module"] == "myframework.training:main"
    assert fw["program"] == "train.py"
    assert fw["argv"] == ["train"]


@pytest.mark.parametrize("program", ["train.sh", None])
def test_sagemaker_training_module_wins_over_any_program_kind(mlroot, run, program):
    (mlroot.path / "code" / "fw3.py").write_text(
        "import os\ndef main():\n    open(os.path.join(os.environ['SM_MODEL_DIR'], 'fw3'), 'w').write('ran')\n")
    mlroot.script("train.sh", "exit 7\n")
    env = {"SAGEMAKER_TRAINING_MODULE": "fw3:main"}
    if program:
        env["SAGEMAKER_PROGRAM"] = program
    r = run("train", env=env)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model" / "fw3").read_text() == "ran"


def test_sagemaker_training_module_errors(mlroot, run):
    mlroot.script("train.py", "print('x')\n")
    r = run("train", env=py_env("train.py", SAGEMAKER_TRAINING_MODULE="myframework.training"))
    assert r.returncode == 1
    assert "module:function" in mlroot.failure_text()
    (mlroot.path / "code" / "fw2.py").write_text("def main():\n    raise RuntimeError('framework failed')\n")
    mlroot.failure.unlink()
    r = run("train", env=py_env("train.py", SAGEMAKER_TRAINING_MODULE="fw2:main"))
    assert r.returncode == 1
    assert error_message(mlroot.failure_text()).startswith("RuntimeError: framework failed")


# ---- python3 itself, with pyboot.so preloaded ----------------------------------------------------------------------

PYBOOT = BUILD / "lib" / "smhost" / "internal" / "pyboot.so"
PROC_SCRIPT = """
    import json, os, subprocess, sys
    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
    child = subprocess.run(["/usr/bin/env"], capture_output=True, text=True).stdout.splitlines()
    json.dump({"exe": os.readlink("/proc/self/exe"), "parent": os.readlink(f"/proc/{os.getppid()}/exe"),
               "builtin": "smhost" in sys.builtin_module_names, "fds": fds, "env": dict(os.environ),
               "child_env": dict(line.split("=", 1) for line in child if "=" in line),
               "maps": sorted({l.split()[-1] for l in open("/proc/self/maps") if "/" in l}),
               "orig_argv": sys.orig_argv, "argv": sys.argv, "flags_u": sys.flags.dont_write_bytecode},
              open(os.path.join(os.environ["SM_MODEL_DIR"], "proc.json"), "w"))
    """


def test_job_process_becomes_python3(mlroot, run):
    """The runner exec()s /usr/bin/python3 itself: the program runs in the job process (its parent is smhost) with
    python3's own argv, the smhost module built in, and nothing of the hand-off left: no descriptor, no LD_PRELOAD or
    SMHOST_PYBOOT in os.environ or in the environment of the processes it starts."""
    mlroot.script("train.py", PROC_SCRIPT)
    mlroot.hyperparameters({"lr": 0.5})
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 0, r.stderr
    s = json.loads((mlroot.path / "model" / "proc.json").read_text())
    script = str(mlroot.path / "code" / "train.py")
    assert s["exe"] == os.path.realpath(PY)
    assert s["parent"] == str(SMHOST.resolve())
    assert s["builtin"] is True
    assert s["fds"][:3] == [0, 1, 2] and len(s["fds"]) == 4, s["fds"]  # the 4th is listdir's own
    assert s["argv"] == [script, "--lr", "0.5"]
    assert s["orig_argv"] == [PY, script, "--lr", "0.5"]  # exactly the toolkit's command line
    for env in (s["env"], s["child_env"]):
        assert "LD_PRELOAD" not in env and "SMHOST_PYBOOT" not in env
    assert s["child_env"]["SM_HP_LR"] == "0.5"
    assert str(PYBOOT.resolve()) in s["maps"]  # it is there, only invisible


@pytest.mark.parametrize("preload", ["libm.so.6", ""])
def test_the_users_ld_preload_is_kept(mlroot, run, preload):
    """An image's own LD_PRELOAD (jemalloc, tcmalloc...) still applies to python3 and reaches user code and its
    children unchanged; an empty one stays empty."""
    mlroot.script("train.py", PROC_SCRIPT)
    extra = {}
    if SANITIZED and preload:
        # The test starts smhost itself with the library preloaded, ahead of the ASan runtime of the sanitized
        # smhost, which ASan refuses unless its link-order check is off (an image would not run that build).
        user = os.environ.get("ASAN_OPTIONS")
        extra["ASAN_OPTIONS"] = f"{user + ':' if user else ''}verify_asan_link_order=0"
    r = run("train", env=py_env("train.py", LD_PRELOAD=preload, **extra))
    assert r.returncode == 0, r.stderr
    s = json.loads((mlroot.path / "model" / "proc.json").read_text())
    assert s["env"]["LD_PRELOAD"] == s["child_env"]["LD_PRELOAD"] == preload
    assert "SMHOST_PYBOOT" not in s["env"]
    if preload:
        assert any(m.endswith("/" + preload) for m in s["maps"]), s["maps"]


def test_sagemaker_training_module_runs_in_python3(mlroot, run):
    (mlroot.path / "code" / "fw4.py").write_text("import sys\ndef main():\n" + textwrap.indent(
        textwrap.dedent(PROC_SCRIPT), "    ") + "\n")
    r = run("train", env={"SAGEMAKER_TRAINING_MODULE": "fw4:main", "SAGEMAKER_PROGRAM": "train.py"})
    assert r.returncode == 0, r.stderr
    s = json.loads((mlroot.path / "model" / "proc.json").read_text())
    assert s["exe"] == os.path.realpath(PY) and s["argv"] == ["train"]
    assert "LD_PRELOAD" not in s["env"] and "SMHOST_PYBOOT" not in s["env"]
    assert len(s["fds"]) == 4, s["fds"]


def test_pyboot_is_built_to_be_preloaded_into_python3():
    """One exported symbol (a preloaded library's symbols come first in python3 and its extension modules), no
    libpython (python3 exports the interpreter), and never a sanitizer runtime, whatever the build."""
    ldd = subprocess.run(["ldd", str(PYBOOT)], capture_output=True, text=True, check=True).stdout
    assert "libpython" not in ldd and "libasan" not in ldd and "libubsan" not in ldd, ldd
    syms = subprocess.run(["nm", "-D", "--defined-only", str(PYBOOT)], capture_output=True, text=True).stdout
    if syms:  # binutils is there wherever the tree was built
        assert [l.split()[-1] for l in syms.splitlines()] == ["__libc_start_main"], syms


def test_python_runner_plugin_does_not_link_libpython():
    so = BUILD / "lib" / "smhost" / "plugins" / "python.so"
    ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True, check=True).stdout
    assert "libpython" not in ldd, ldd


def test_python3_with_pyboot_but_no_hand_off_is_plain_python3(tmp_path):
    """pyboot does nothing unless smhost handed a job over: python3 runs as it is (no smhost module)."""
    (tmp_path / "a.py").write_text("import sys\ntry:\n    import smhost\nexcept ImportError as e:\n"
                                   "    print('no smhost:', sys.argv[1:]); sys.exit(3)\n")
    r = subprocess.run([PY, str(tmp_path / "a.py"), "x"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(PYBOOT)})
    assert r.returncode == 3 and "no smhost: ['x']" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("handoff,why", [("0,job,0,0,-1,3", "another version of smhost"),
                                         ("1,job,0,0,x,3", "descriptors"),
                                         ("1,job,0,0,-1,99", "cannot read the job"),
                                         ("1,fly,0,0", "unknown mode")])
def test_bad_hand_off_is_refused_clearly(tmp_path, handoff, why):
    r = subprocess.run([PY, "-c", "print('ran')"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(PYBOOT), "SMHOST_PYBOOT": handoff})
    assert r.returncode == 70 and "ran" not in r.stdout
    assert why in r.stderr and "reinstall smhost" in r.stderr, r.stderr


def _installed_without_pyboot(tmp_path):
    """smhost, its plugins and its internal modules, but no pyboot.so: a partial install."""
    inst = tmp_path / "inst"
    (inst / "bin").mkdir(parents=True)
    shutil.copy2(SMHOST, inst / "bin" / "smhost")
    (inst / "lib" / "smhost" / "internal").mkdir(parents=True)
    (inst / "lib" / "smhost" / "plugins").symlink_to(BUILD / "lib" / "smhost" / "plugins")
    for so in (BUILD / "lib" / "smhost" / "internal").glob("*.so"):
        if so.name != "pyboot.so":
            (inst / "lib" / "smhost" / "internal" / so.name).symlink_to(so)
    return inst / "bin" / "smhost"


def test_missing_pyboot_is_a_clear_plugin_error(mlroot, tmp_path):
    """smhost installed without lib/smhost/internal/pyboot.so: the job fails with a message that says what to do."""
    smhost = _installed_without_pyboot(tmp_path)
    mlroot.script("train.py", "print('never')\n")
    r = subprocess.run([str(smhost), "train"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SAGEMAKER_BASE_DIR": str(mlroot.path),
                            "SMHOST_PLUGIN_PATH": "", "SAGEMAKER_PROGRAM": "train.py",
                            "SMHOST_CONFIG": os.devnull})
    assert r.returncode == 127, r.stderr
    assert "never" not in r.stdout
    text = mlroot.failure_text()
    assert text.startswith("PluginError") and "needs smhost's pyboot.so" in text, text
    assert "reinstall smhost" in text


def test_missing_python3_is_a_clear_plugin_error(mlroot):
    """An image without python3 (here: /usr/bin hidden by an empty tmpfs in a private mount namespace)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root for a private mount namespace")
    mlroot.script("train.py", "print('never')\n")
    r = subprocess.run(["unshare", "-m", "/bin/sh", "-c", 'mount -t tmpfs none /usr/bin && exec "$0" train',
                        str(SMHOST)], capture_output=True, text=True,
                       env={**os.environ, "SAGEMAKER_BASE_DIR": str(mlroot.path), "SMHOST_PLUGIN_PATH": "",
                            "SAGEMAKER_PROGRAM": "train.py", "SMHOST_CONFIG": os.devnull})
    if "mount" in r.stderr and r.returncode not in (127,):
        pytest.skip(f"no private mount namespace here: {r.stderr.strip()[:200]}")
    assert r.returncode == 127, r.stderr
    text = mlroot.failure_text()
    assert text.startswith("PluginError") and f"needs {PY}, which is missing" in text, text
    assert "apt-get install python3" in text


# ---- import smhost ----------------------------------------------------------------------------------------------

def test_import_smhost(mlroot, run):
    mlroot.hyperparameters({"lr": 0.001, "epochs": 10, "opt": "adam", "flag": True, "layers": [64, 32],
                            "cfg": {"a": None}, "big": 12345678901234567890})
    mlroot.inputdataconfig(["train", "validation"])
    # Two hosts whose names resolve anywhere (a multi-host job waits for its peers' names).
    mlroot.resourceconfig(current_host="127.0.0.2", hosts=["127.0.0.1", "127.0.0.2"])
    mlroot.script("train.py", """
        import json, os, smhost
        out = {k: getattr(smhost, k) for k in ("hyperparameters", "channels", "model_dir", "output_data_dir",
               "hosts", "current_host", "is_master", "num_gpus", "num_cpus", "master_host", "code_dir")}
        out["types"] = {k: type(v).__name__ for k, v in smhost.hyperparameters.items()}
        out["env_gpus"] = os.environ["SM_NUM_GPUS"]
        json.dump(out, open(os.path.join(smhost.model_dir, "smhost.json"), "w"))
        """)
    r = run("train", env=py_env("train.py"))
    assert r.returncode == 0, r.stderr
    s = json.loads((mlroot.path / "model" / "smhost.json").read_text())
    assert s["hyperparameters"] == {"lr": 0.001, "epochs": 10, "opt": "adam", "flag": True, "layers": [64, 32],
                                    "cfg": {"a": None}, "big": 12345678901234567890}
    assert s["types"] == {"big": "int", "cfg": "dict", "epochs": "int", "flag": "bool", "layers": "list",
                          "lr": "float", "opt": "str"}
    data = mlroot.path / "input" / "data"
    assert s["channels"] == {"train": str(data / "train"), "validation": str(data / "validation")}
    assert s["model_dir"] == str(mlroot.path / "model")
    assert s["output_data_dir"] == str(mlroot.path / "output" / "data")
    assert s["code_dir"] == str(mlroot.path / "code")
    assert s["hosts"] == ["127.0.0.1", "127.0.0.2"]
    assert s["current_host"] == "127.0.0.2"
    assert s["master_host"] == "127.0.0.1" and s["is_master"] is False
    assert s["num_gpus"] == int(s["env_gpus"])
    assert s["num_cpus"] >= 1


# ---- requirements.txt -------------------------------------------------------------------------------------------

def test_requirements_installed_offline_before_the_program(mlroot, run, tmp_path):
    wheels = build_wheel(tmp_path, "smhreqdemo", body="VALUE = 42\n")
    (mlroot.path / "code" / "requirements.txt").write_text("smhreqdemo==0.1\n")
    mlroot.script("train.py", """
        import os, smhreqdemo
        open(os.path.join(os.environ["SM_MODEL_DIR"], "value"), "w").write(str(smhreqdemo.VALUE))
        """)
    r = run("train", env=py_env("train.py", **ml_userbase(tmp_path, PIP_FIND_LINKS=str(wheels))), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model" / "value").read_text() == "42"
    assert "Successfully installed smhreqdemo-0.1" in r.stdout + r.stderr  # pip's output passes through


def test_requirements_installed_for_a_shell_program_too(mlroot, run, tmp_path):
    wheels = build_wheel(tmp_path, "smhreqsh")
    (mlroot.path / "code" / "requirements.txt").write_text("smhreqsh\n")
    mlroot.script("train.sh", '#!/bin/sh\nexec /usr/bin/python3 -c "import smhreqsh, os; '
                  'open(os.environ[\'SM_MODEL_DIR\'] + \'/ok\', \'w\').write(str(smhreqsh.VALUE))"\n')
    r = run("train", env=py_env("train.sh", **ml_userbase(tmp_path, PIP_FIND_LINKS=str(wheels))), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model" / "ok").read_text() == "42"


def test_failed_requirements_install_is_a_clear_failure(mlroot, run, tmp_path):
    (mlroot.path / "code" / "requirements.txt").write_text("smhost-no-such-package==9.9\n")
    mlroot.script("train.py", "print('never runs')\n")
    r = run("train", env=py_env("train.py", **ml_userbase(tmp_path)), timeout=120)
    assert r.returncode != 0
    assert "never runs" not in r.stdout
    text = mlroot.failure_text()
    assert text.startswith("InstallRequirementsError")
    assert "smhost-no-such-package" in text and "No matching distribution" in text
    assert len(text.encode()) <= 1024


def test_break_system_packages_can_be_turned_off(mlroot, run, tmp_path):
    if not os.path.exists("/usr/lib/python3.11/EXTERNALLY-MANAGED"):
        pytest.skip("this Python is not marked externally managed")
    ini = tmp_path / "smhost.ini"
    ini.write_text("[python]\nbreak_system_packages = false\n")
    (mlroot.path / "code" / "requirements.txt").write_text("pip\n")  # already there: nothing would change
    mlroot.script("train.py", "print('never runs')\n")
    env = py_env("train.py", PIP_NO_INDEX="1", SMHOST_CONFIG=str(ini))
    r = run("train", env=env, timeout=120)
    assert r.returncode != 0
    assert "externally-managed-environment" in mlroot.failure_text()
    mlroot.failure.unlink()
    ini.write_text("[python]\nbreak_system_packages = true\n")
    r = run("train", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "never runs" in r.stdout


# ---- samples ------------------------------------------------------------------------------------------------------

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "samples")


def sample_root(tmp_path, name):
    import shutil
    root = tmp_path / name
    shutil.copytree(os.path.join(SAMPLES, name, "ml"), root)
    return root


def test_sklearn_iris_sample(tmp_path):
    from conftest import run_smhost
    root = sample_root(tmp_path, "sklearn-iris")
    r = run_smhost(["train"], env={"SAGEMAKER_BASE_DIR": str(root)}, timeout=120)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8 and metrics["test_samples"] == 30
    assert (root / "model" / "model.joblib").stat().st_size > 0
    assert (root / "output" / "success").exists()


def test_sm_env_example_sample(tmp_path):
    from conftest import run_smhost
    root = sample_root(tmp_path, "sm-env-example")
    r = run_smhost(["train"], env={"SAGEMAKER_BASE_DIR": str(root)}, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads((root / "output" / "data" / "summary.json").read_text())
    assert s["args"]["epochs"] == 3 and s["args"]["learning_rate"] == 0.05 and s["args"]["optimizer"] == "adam"
    assert s["args"]["train"] == str(root / "input" / "data" / "train")
    assert s["hps"] == {"epochs": 3, "learning-rate": 0.05, "optimizer": "adam"}
    assert s["smhost_module"] == "agrees with SM_* variables"
