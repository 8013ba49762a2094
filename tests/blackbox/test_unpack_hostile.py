"""sagemaker_submit_directory against hostile archives (issue 13, defect 3): bombs are capped, a stop signal ends
the unpack at once, debris of a killed run is cleaned up, sparse files stay sparse."""
import io
import os
import signal
import subprocess
import tarfile
import time
import zlib

from conftest import run_smhost, start_smhost

MIB = 1024 * 1024


def gz_member(data):
    c = zlib.compressobj(1, zlib.DEFLATED, 31)  # a gzip member
    return c.compress(data) + c.flush()


def gzip_bomb(path, size, name="bomb.bin"):
    """A .tar.gz with one file of `size` zero bytes (a multiple of 64 MiB), built from repeated gzip members in
    well under a second: a few hundred KiB that expand to `size`."""
    assert size % (64 * MIB) == 0
    info = tarfile.TarInfo(name)
    info.size = size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    zeros = gz_member(b"\0" * (64 * MIB))
    with open(path, "wb") as f:
        f.write(gz_member(header))
        for _ in range(size // (64 * MIB)):
            f.write(zeros)
        f.write(gz_member(b"\0" * 1024))  # the end-of-archive blocks
    return path


def code_entries(mlroot):
    return sorted(p.name for p in (mlroot.path / "code").iterdir())


def test_unpack_caps_bytes_with_a_clear_error(mlroot, tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", 128 * MIB)
    assert bomb.stat().st_size < 1 * MIB
    mlroot.hyperparameters({"sagemaker_submit_directory": str(bomb), "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_UNPACK_MAX_MB": "16"})
    assert r.returncode == 65, r.stderr
    msg = mlroot.failure_text()
    assert "SMHOST_UNPACK_MAX_MB=16" in msg and "more than 16 MiB" in msg and "bomb.bin" in msg
    assert code_entries(mlroot) == []
    r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_UNPACK_MAX_MB": "lots"})
    assert r.returncode == 78 and "SMHOST_UNPACK_MAX_MB=lots" in r.stderr


def test_unpack_caps_entries(mlroot, tmp_path):
    tgz = tmp_path / "many.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        for k in range(30):
            info = tarfile.TarInfo(f"f{k}.txt")
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
    mlroot.hyperparameters({"sagemaker_submit_directory": str(tgz), "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_UNPACK_MAX_FILES": "10"})
    assert r.returncode == 65, r.stderr
    assert "SMHOST_UNPACK_MAX_FILES=10" in mlroot.failure_text()
    assert code_entries(mlroot) == []


def test_sigterm_stops_the_unpack_at_once_and_leaves_nothing(mlroot, tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", 4096 * MIB)
    mlroot.hyperparameters({"sagemaker_submit_directory": str(bomb), "sagemaker_program": "run.sh"})
    p = start_smhost(["train"], mlroot, env={"SMHOST_UNPACK_MAX_MB": "8192"})
    staging = []
    end = time.time() + 10
    while time.time() < end and not staging:  # the unpack has begun
        staging = [n for n in code_entries(mlroot) if n.startswith(".smhost-unpack-")]
        time.sleep(0.05)
    assert staging, "the unpack never started"
    time.sleep(1)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    took = time.time() - t0
    assert p.returncode == 128 + signal.SIGTERM, err
    assert took < 2, f"SIGTERM took {took:.1f} s to stop the unpack"
    assert "SIGTERM" in err and "unpacking" in err
    assert code_entries(mlroot) == []


def test_debris_of_a_killed_unpack_is_removed_at_start(mlroot, tmp_path):
    debris = mlroot.path / "code" / ".smhost-unpack-Ab12Cd"
    (debris / "half").mkdir(parents=True)
    (debris / "half" / "written.py").write_text("partial")
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text('echo ran > "$SM_MODEL_DIR/ran.txt"\n')
    tgz = tmp_path / "src.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(src / "run.sh", arcname="run.sh")
    mlroot.hyperparameters({"sagemaker_submit_directory": str(tgz), "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot)
    assert r.returncode == 0, r.stderr
    assert code_entries(mlroot) == ["run.sh"]
    assert (mlroot.path / "model" / "ran.txt").read_text() == "ran\n"


def test_sparse_files_stay_sparse(mlroot, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("exit 0\n")
    with open(src / "sparse.bin", "wb") as f:
        f.truncate(1024 * MIB)
        f.seek(512 * MIB)
        f.write(b"middle")
    if os.stat(src / "sparse.bin").st_blocks * 512 > MIB:
        import pytest
        pytest.skip("this file system does not keep holes")
    tgz = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "-S", "-czf", str(tgz), "-C", str(src), "run.sh", "sparse.bin"], check=True)
    for source in (tgz, src):
        for p in (mlroot.path / "code").iterdir():
            p.unlink()
        mlroot.hyperparameters({"sagemaker_submit_directory": str(source), "sagemaker_program": "run.sh"})
        r = run_smhost(["train"], mlroot=mlroot, env={"SMHOST_UNPACK_MAX_MB": "64"})
        assert r.returncode == 0, r.stderr
        out = mlroot.path / "code" / "sparse.bin"
        st = os.stat(out)
        assert st.st_size == 1024 * MIB
        assert st.st_blocks * 512 < 4 * MIB, f"{source}: {st.st_blocks * 512} bytes allocated"
        with open(out, "rb") as f:
            f.seek(512 * MIB)
            assert f.read(6) == b"middle"
