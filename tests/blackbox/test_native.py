"""Native trainers: a shared object as the program, loaded by the `native` runner plugin (docs/native.md).

Trainers are compiled by the tests themselves (cc + sdk/include), except the native-linreg sample, which `make`
builds into <build>/samples/native-linreg/liblinreg.so.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD, REPO, SANITIZED, start_smhost

SDK_INCLUDE = REPO / "sdk" / "include"
LINREG = BUILD / "samples" / "native-linreg" / "liblinreg.so"


def header_abi():
    text = (SDK_INCLUDE / "smhost" / "plugin.h").read_text()
    major = int(re.search(r"#define SMH_ABI_MAJOR (\d+)", text).group(1))
    minor = int(re.search(r"#define SMH_ABI_MINOR (\d+)", text).group(1))
    return major, minor


def compile_trainer(tmp_path, name, source):
    """Build `source` into tmp_path/build/<name> as a shared object against the in-tree SDK."""
    out_dir = tmp_path / "build"
    out_dir.mkdir(exist_ok=True)
    src = out_dir / (name + ".c")
    src.write_text(source)
    out = out_dir / name
    subprocess.run(
        ["cc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-fPIC", "-shared",
         "-fvisibility=hidden", f"-I{SDK_INCLUDE}", "-o", str(out), str(src)],
        check=True, capture_output=True, text=True)
    return out


def install_program(mlroot, built, name=None, mode=0o755):
    dest = mlroot.path / "code" / (name or built.name)
    shutil.copyfile(built, dest)
    dest.chmod(mode)
    return dest


def train(run, program, env=None, timeout=60):
    e = {"SAGEMAKER_PROGRAM": program}
    e.update(env or {})
    return run("train", env=e, timeout=timeout)


def failure(mlroot):
    return mlroot.failure_text() or ""


MARK = r"""
#include <stdio.h>
#include <smhost/trainer.h>

static int mark(const smh_host_api *host, const smh_job *job, const char *who) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ran.txt", host->job_path(job, SMH_PATH_MODEL));
    FILE *f = fopen(p, "w");
    if (f == NULL)
        return 9;
    fputs(who, f);
    fclose(f);
    return 0;
}
"""

ENTRIES = MARK + r"""
SMH_TRAINER(smh_train) { return mark(host, job, "smh_train"); }
SMH_TRAINER(smh_train_multi) { return mark(host, job, "smh_train_multi"); }
SMH_TRAINER(other_entry) { return mark(host, job, "other_entry"); }
"""


def ran(mlroot):
    p = mlroot.path / "model" / "ran.txt"
    return p.read_text() if p.exists() else None


# ---- the linreg sample ----------------------------------------------------------------------------------------

def make_regression(mlroot, rows=2000, seed=7, files=2, header=False):
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    true = np.array([2.0, -3.0, 0.25])
    y = 1.5 + X @ true + rng.normal(scale=0.01, size=rows)
    data = np.c_[X, y]
    mlroot.inputdataconfig(["train"])
    for i, part in enumerate(np.array_split(data, files)):
        path = mlroot.path / "input" / "data" / "train" / f"part-{i}.csv"
        with open(path, "w") as f:
            if header:
                f.write("x1,x2,x3,y\n")
            for r in part:
                f.write(",".join(repr(float(v)) for v in r) + "\n")
    A = np.c_[np.ones(rows), X]
    return np.linalg.lstsq(A, y, rcond=None)[0], X, y


def test_linreg_fits_coefficients(mlroot, run):
    assert LINREG.exists(), f"{LINREG} missing: run make"
    expected, X, y = make_regression(mlroot, header=True)
    install_program(mlroot, LINREG)
    r = train(run, "liblinreg.so")
    assert r.returncode == 0, r.stderr
    assert mlroot.success.exists()
    model = json.loads((mlroot.path / "model" / "model.json").read_text())
    got = [model["intercept"], *model["coefficients"]]
    assert len(got) == 4
    for g, e in zip(got, expected):
        assert abs(g - e) < 1e-8, (got, list(expected))
    for g, t in zip(got, [1.5, 2.0, -3.0, 0.25]):
        assert abs(g - t) < 0.01
    metrics = json.loads((mlroot.path / "output" / "data" / "metrics.json").read_text())
    assert metrics["rows"] == 2000
    assert metrics["r2"] > 0.9999
    assert 0.5e-4 < metrics["mse"] < 2e-4  # the noise variance, 1e-4
    assert "train_mse=" in r.stderr + r.stdout


def test_linreg_hyperparameters(mlroot, run):
    """Ridge without an intercept, target in column 0: compare with numpy's closed form."""
    np = pytest.importorskip("numpy")
    _, X, y = make_regression(mlroot, rows=500, files=1)
    path = mlroot.path / "input" / "data" / "train" / "part-0.csv"
    path.write_text("".join(",".join(repr(float(v)) for v in [yy, *xx]) + "\n" for xx, yy in zip(X, y)))
    mlroot.hyperparameters({"fit_intercept": False, "l2": 5.0, "target_column": 0})
    install_program(mlroot, LINREG)
    r = train(run, "liblinreg.so")
    assert r.returncode == 0, r.stderr
    model = json.loads((mlroot.path / "model" / "model.json").read_text())
    expected = np.linalg.solve(X.T @ X + 5.0 * np.eye(3), X.T @ y)
    assert model["intercept"] == 0
    assert np.allclose(model["coefficients"], expected, rtol=0, atol=1e-9)


def test_linreg_bad_data_names_file_and_line(mlroot, run):
    mlroot.inputdataconfig(["train"])
    (mlroot.path / "input" / "data" / "train" / "d.csv").write_text("1,2,3\n4,oops,6\n")
    install_program(mlroot, LINREG)
    r = train(run, "liblinreg.so")
    assert r.returncode == 1
    text = failure(mlroot)
    assert "d.csv:2" in text and "field 2" in text, text


def test_linreg_missing_channel(mlroot, run):
    mlroot.inputdataconfig(["validation"])
    install_program(mlroot, LINREG)
    r = train(run, "liblinreg.so")
    assert r.returncode == 1
    assert "no channel named 'train'" in failure(mlroot)


def test_linreg_singular(mlroot, run):
    mlroot.inputdataconfig(["train"])
    (mlroot.path / "input" / "data" / "train" / "d.csv").write_text("1,2,3\n2,4,5\n3,6,7\n")
    install_program(mlroot, LINREG)
    r = train(run, "liblinreg.so")
    assert r.returncode == 1
    assert "singular" in failure(mlroot) and "l2" in failure(mlroot)


# ---- which file is a native trainer ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o755])
def test_elf_shared_object_without_so_extension(mlroot, run, mode):
    """The host claims it by its ELF header; the default entry point is found whatever the name."""
    make_regression(mlroot, rows=200, files=1)
    install_program(mlroot, LINREG, name="fit_model", mode=mode)
    r = train(run, "fit_model")
    assert r.returncode == 0, r.stderr
    assert (mlroot.path / "model" / "model.json").exists()


def test_not_a_shared_object(mlroot, run):
    mlroot.script("broken.so", "this is not an ELF file\n", mode=0o644)
    r = train(run, "broken.so")
    assert r.returncode == 126
    text = failure(mlroot)
    assert "broken.so" in text and "cannot be loaded" in text, text


# ---- the entry point -------------------------------------------------------------------------------------------

def test_derived_name_wins_over_default(tmp_path, mlroot, run):
    install_program(mlroot, compile_trainer(tmp_path, "libmulti.so", ENTRIES))
    r = train(run, "libmulti.so")
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "smh_train_multi"


def test_derived_name_from_versioned_file(tmp_path, mlroot, run):
    """libmulti.so.1: no .so extension, claimed by ELF type; the name stops at the first dot."""
    install_program(mlroot, compile_trainer(tmp_path, "libmulti.so.1", ENTRIES))
    r = train(run, "libmulti.so.1")
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "smh_train_multi"


def test_default_name_when_no_derived_symbol(tmp_path, mlroot, run):
    built = compile_trainer(tmp_path, "libmulti.so", ENTRIES)
    install_program(mlroot, built)
    (mlroot.path / "code" / "librenamed.so").symlink_to("libmulti.so")
    r = train(run, "librenamed.so")
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "smh_train"


def test_explicit_entry_from_hyperparameter(tmp_path, mlroot, run):
    install_program(mlroot, compile_trainer(tmp_path, "libmulti.so", ENTRIES))
    mlroot.hyperparameters({"sagemaker_native_entry": "other_entry"})
    r = train(run, "libmulti.so")
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "other_entry"


def test_env_entry_wins_over_hyperparameter(tmp_path, mlroot, run):
    install_program(mlroot, compile_trainer(tmp_path, "libmulti.so", ENTRIES))
    mlroot.hyperparameters({"sagemaker_native_entry": "smh_train"})
    r = train(run, "libmulti.so", env={"SMHOST_NATIVE_ENTRY": "other_entry"})
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "other_entry"


def test_missing_explicit_entry_does_not_fall_back(tmp_path, mlroot, run):
    install_program(mlroot, compile_trainer(tmp_path, "libmulti.so", ENTRIES))
    r = train(run, "libmulti.so", env={"SMHOST_NATIVE_ENTRY": "smh_train_typo"})
    assert r.returncode == 126
    assert ran(mlroot) is None
    text = failure(mlroot)
    assert "libmulti.so" in text and "smh_train_typo" in text and "SMHOST_NATIVE_ENTRY" in text, text


def test_no_entry_point_names_what_was_tried(tmp_path, mlroot, run):
    src = "#include <smhost/trainer.h>\nSMH_TRAINER(train_me) { return 0; }\n"
    install_program(mlroot, compile_trainer(tmp_path, "libword-count.so", src))
    r = train(run, "libword-count.so")
    assert r.returncode == 126
    text = failure(mlroot)
    for word in ("libword-count.so", "smh_train_word_count", "smh_train"):
        assert word in text, text


# ---- the ABI record --------------------------------------------------------------------------------------------

def abi_trainer(major, minor, extra=0):
    return f"""
#include <smhost/trainer.h>
typedef struct {{ smh_trainer_abi v; char more[{extra or 1}]; }} rec;
SMH_EXPORT const rec smh_abi_smh_train = {{{{sizeof(smh_trainer_abi) + {extra}, {major}, {minor}, {{0}}}}, {{0}}}};
SMH_EXPORT int smh_train(const smh_host_api *h, const smh_job *j, char *e, size_t n);
SMH_EXPORT int smh_train(const smh_host_api *h, const smh_job *j, char *e, size_t n) {{
    (void)h, (void)j, (void)e, (void)n;
    return 42;
}}
"""


@pytest.mark.parametrize("case", ["major", "minor", "size"])
def test_abi_mismatch_is_refused(tmp_path, mlroot, run, case):
    major, minor = header_abi()
    tmajor, tminor, extra = {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0), "size": (major, minor, 16)}[case]
    install_program(mlroot, compile_trainer(tmp_path, "libabi.so", abi_trainer(tmajor, tminor, extra)))
    r = train(run, "libabi.so")
    assert r.returncode == 126, r.stderr
    text = failure(mlroot)
    assert "libabi.so" in text and "smh_train" in text, text
    assert f"{major}.{minor}" in text, text
    if case != "size":
        assert f"{tmajor}.{tminor}" in text, text
    else:
        assert "larger" in text, text


def test_missing_abi_record(tmp_path, mlroot, run):
    src = """
#include <smhost/trainer.h>
SMH_EXPORT int smh_train(const smh_host_api *h, const smh_job *j, char *e, size_t n);
SMH_EXPORT int smh_train(const smh_host_api *h, const smh_job *j, char *e, size_t n) {
    (void)h, (void)j, (void)e, (void)n;
    return 42;
}
"""
    install_program(mlroot, compile_trainer(tmp_path, "libnoabi.so", src))
    r = train(run, "libnoabi.so")
    assert r.returncode == 126
    text = failure(mlroot)
    assert "libnoabi.so" in text and "smh_abi_smh_train" in text and "SMH_TRAINER" in text, text


# ---- what the trainer gets, and what its return value means ----------------------------------------------------

PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <smhost/trainer.h>

SMH_TRAINER(smh_train) {
    char p[4096];
    snprintf(p, sizeof p, "%s/probe.txt", host->job_path(job, SMH_PATH_MODEL));
    FILE *f = fopen(p, "w");
    if (f == NULL)
        return smh_trainer_fail(err, errlen, SMH_E_FAIL, "cannot write %s", p);
    int64_t epochs = 0; double lr = 0; int flag = -1; const char *name = NULL, *fw = NULL;
    int st = host->hp_int64(job, "epochs", &epochs);  /* call first: argument evaluation order is unspecified */
    fprintf(f, "epochs %d %lld\n", st, (long long)epochs);
    st = host->hp_double(job, "lr", &lr);
    fprintf(f, "lr %d %g\n", st, lr);
    st = host->hp_bool(job, "flag", &flag);
    fprintf(f, "flag %d %d\n", st, flag);
    st = host->hp_str(job, "name", &name);
    fprintf(f, "name %d %s\n", st, name ? name : "");
    fprintf(f, "missing %d\n", host->hp_int64(job, "missing", &epochs));
    st = host->framework_param(job, "sagemaker_native_entry", &fw);
    fprintf(f, "framework %d %s\n", st, fw ? fw : "");
    for (size_t i = 0; i < host->channel_count(job); i++)
        fprintf(f, "channel %s %s\n", host->channel_name(job, i), host->channel_dir(job, host->channel_name(job, i)));
    fprintf(f, "hosts %zu %s %s %d\n", host->host_count(job), host->current_host(job), host->master_host(job),
            host->is_master(job));
    char cwd[4096];
    fprintf(f, "cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    fprintf(f, "code %s\n", host->job_path(job, SMH_PATH_CODE));
    fprintf(f, "cancel %d\n", host->cancel_requested(job));
    const char *md = getenv("SM_MODEL_DIR");
    fprintf(f, "getenv %s\n", md ? md : "(unset)");
    fclose(f);
    host->log("probe", SMH_LOG_INFO, "probe done");
    printf("trainer stdout line");  /* no newline, no flush: the host must flush */
    return 0;
}
"""


def test_trainer_sees_the_job(tmp_path, mlroot, run):
    install_program(mlroot, compile_trainer(tmp_path, "libprobe.so", PROBE))
    mlroot.hyperparameters({"epochs": 3, "lr": 0.5, "flag": True, "name": "abc",
                            "sagemaker_native_entry": "smh_train"})
    mlroot.inputdataconfig(["train", "test"])
    mlroot.resourceconfig()
    r = train(run, "libprobe.so")
    assert r.returncode == 0, r.stderr
    assert "trainer stdout line" in r.stdout
    lines = (mlroot.path / "model" / "probe.txt").read_text().splitlines()
    data = mlroot.path / "input" / "data"
    assert "epochs 0 3" in lines
    assert "lr 0 0.5" in lines
    assert "flag 0 1" in lines
    assert "name 0 abc" in lines
    assert "missing -4" in lines  # SMH_E_NOTFOUND
    assert "framework 0 smh_train" in lines
    assert f"channel test {data / 'test'}" in lines
    assert f"channel train {data / 'train'}" in lines
    assert "hosts 1 algo-1 algo-1 1" in lines
    code = mlroot.path / "code"
    assert f"cwd {code}" in lines and f"code {code}" in lines
    assert "cancel 0" in lines
    assert f"getenv {mlroot.path / 'model'}" in lines  # the job's environment is the process's


RC = r"""
#include <smhost/trainer.h>
SMH_TRAINER(smh_train) {
    int64_t rc = 0;
    const char *msg = NULL;
    host->hp_int64(job, "rc", &rc);
    if (host->hp_str(job, "msg", &msg) == SMH_OK)
        smh_trainer_fail(err, errlen, 0, "%s", msg);
    return (int)rc;
}
"""


@pytest.mark.parametrize(
    "rc,msg,code,expect",
    [
        (0, None, 0, None),
        (3, "bad data in batch 7", 3, "bad data in batch 7"),
        (-1, "loss is NaN at step 12", 1, "loss is NaN at step 12"),
        (-4, None, 1, "SMH_E_NOTFOUND"),
        (300, None, 1, "outside 0..255"),
    ],
)
def test_return_value(tmp_path, mlroot, run, rc, msg, code, expect):
    install_program(mlroot, compile_trainer(tmp_path, "librc.so", RC))
    hps = {"rc": rc}
    if msg:
        hps["msg"] = msg
    mlroot.hyperparameters(hps)
    r = train(run, "librc.so")
    assert r.returncode == code, r.stderr
    if code == 0:
        assert mlroot.success.exists() and not mlroot.failure.exists()
    else:
        assert expect in failure(mlroot), failure(mlroot)


def test_trainer_crash_is_caught(tmp_path, mlroot, run):
    src = "#include <smhost/trainer.h>\nSMH_TRAINER(smh_train) { volatile int *p = 0; *p = 1; return 0; }\n"
    install_program(mlroot, compile_trainer(tmp_path, "libcrash.so", src))
    r = train(run, "libcrash.so")
    assert r.returncode > 0  # smhost itself exited normally
    if not SANITIZED:  # ASan's SEGV handler turns the crash into exit(1)
        assert r.returncode == 128 + signal.SIGSEGV, r.stderr
    assert mlroot.failure.exists()
    assert not mlroot.success.exists()


CANCEL = r"""
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <smhost/trainer.h>

SMH_TRAINER(smh_train) {
    char p[4096];
    snprintf(p, sizeof p, "%s/started", host->job_path(job, SMH_PATH_MODEL));
    fclose(fopen(p, "w"));
    int step = 0;
    for (; step < 6000 && !host->cancel_requested(job); step++)
        usleep(10000);
    if (!host->cancel_requested(job))
        return smh_trainer_fail(err, errlen, 5, "never cancelled");
    const char *ck = host->job_path(job, SMH_PATH_CHECKPOINTS);
    mkdir(ck, 0755);
    snprintf(p, sizeof p, "%s/ckpt.txt", ck);
    FILE *f = fopen(p, "w");
    fprintf(f, "step %d\n", step);
    fclose(f);
    return smh_trainer_fail(err, errlen, SMH_E_CANCELLED, "stopped at step %d, checkpoint written", step);
}
"""


def test_sigterm_lets_the_trainer_checkpoint(tmp_path, mlroot):
    install_program(mlroot, compile_trainer(tmp_path, "libcancel.so", CANCEL))
    p = start_smhost(["train"], mlroot=mlroot, env={"SAGEMAKER_PROGRAM": "libcancel.so"})
    try:
        started = mlroot.path / "model" / "started"
        deadline = time.monotonic() + 30
        while not started.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), p.communicate(timeout=10)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ckpt = mlroot.path / "checkpoints" / "ckpt.txt"
    assert ckpt.exists(), err
    assert ckpt.read_text().startswith("step ")
    assert p.returncode == 143, err
    assert "checkpoint written" in err + out


DATA_SYMBOLS = MARK + r"""
SMH_EXPORT const int smh_train_data = 1;  /* what the file name derives, but data */
SMH_TRAINER(smh_train) { return mark(host, job, "smh_train"); }
"""


def test_data_symbol_is_not_an_entry_point(tmp_path, mlroot, run):
    """A derived name that is data is skipped; an explicit one is an error naming it."""
    install_program(mlroot, compile_trainer(tmp_path, "libdata.so", DATA_SYMBOLS))
    r = train(run, "libdata.so")
    assert r.returncode == 0, r.stderr
    assert ran(mlroot) == "smh_train"
    (mlroot.path / "model" / "ran.txt").unlink()
    mlroot.success.unlink()
    r = train(run, "libdata.so", env={"SMHOST_NATIVE_ENTRY": "smh_abi_smh_train"})
    assert r.returncode == 126
    assert ran(mlroot) is None
    assert "smh_abi_smh_train" in failure(mlroot) and "not a function" in failure(mlroot)
