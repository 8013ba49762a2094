"""Device backends (docs/devices.md) through the real binary: `smhost devices --json`, `smhost env`, training jobs
and `smhost serve`.

This machine has no GPU or Neuron device, so the hardware is played by TEST DOUBLES: build/tests/doubles/fake-nvml/
(libnvidia-ml.so.1 answering from a spec file, tests/doubles/fake-nvml/fake_nvml.c), its legacy build without the
_v2/_v3 symbols, build/tests/doubles/fake-rocm-smi/, a Neuron /dev and sysfs tree under SMHOST_TEST_SYSROOT, and the
made-up backend tests/plugins/testdev_backend.c.  SMHOST_TEST_SYSROOT always points at a tree the test builds, so
the machine's own /dev and /proc never leak in.
"""
import json
import os
import shutil
import time

import pytest

from conftest import BUILD, TEST_PLUGIN_DIR, dump_env_script, seen

DOUBLES = BUILD / "tests" / "doubles"
FAKE_NVML = DOUBLES / "fake-nvml" / "libnvidia-ml.so.1"
LEGACY_NVML = DOUBLES / "fake-nvml-legacy" / "libnvidia-ml.so.1"
FAKE_RSMI = DOUBLES / "fake-rocm-smi" / "librocm_smi64.so.7"
EXIT_DEVICE = 75

H100 = 'name="NVIDIA H100 80GB HBM3" mem=85520809984'


@pytest.fixture
def sysroot(tmp_path):
    """An empty fake system root; sysroot.add("dev/nvidia0") creates files (dirs when the name ends in /)."""
    root = tmp_path / "sysroot"
    root.mkdir()

    class Root:
        path = root

        def add(self, rel, text=""):
            p = root / rel
            if rel.endswith("/"):
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
            return p

    return Root()


@pytest.fixture
def nvml(tmp_path, sysroot):
    """nvml(spec, **env): the environment for a job on the fake NVML answering `spec`."""
    assert FAKE_NVML.exists(), f"{FAKE_NVML} missing: run make test-programs"

    def _env(spec, lib=FAKE_NVML, **extra):
        f = tmp_path / "nvml.spec"
        f.write_text(spec)
        e = {"SMHOST_NVML_LIBRARY": str(lib), "FAKE_NVML_SPEC": str(f), "SMHOST_TEST_SYSROOT": str(sysroot.path)}
        e.update(extra)
        return e

    return _env


def devices(run, env):
    r = run("devices", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r  # the whole of stdout is one JSON document


def backend(j, name):
    return next(b for b in j["backends"] if b["name"] == name)


# ---- no accelerator: nothing loaded ---------------------------------------------------------------------------------

def test_machine_without_accelerators_loads_no_gpu_library(mlroot, run, sysroot, tmp_path):
    """The fake NVML is on the library path and would log its nvmlInit_v2 call: with no sign of a GPU it is never
    loaded, neither by `smhost devices` nor by a job."""
    log = tmp_path / "nvml.log"
    env = {"SMHOST_TEST_SYSROOT": str(sysroot.path), "LD_LIBRARY_PATH": str(FAKE_NVML.parent),
           "FAKE_NVML_LOG": str(log)}
    j, r = devices(run, env)
    assert [b["state"] for b in j["backends"]] == ["skipped", "skipped", "skipped"]
    assert j["devices"] == [] and j["num_gpus"] == 0 and j["num_neurons"] == 0
    assert "NVML not loaded" in backend(j, "nvidia")["message"]
    dump_env_script(mlroot)
    r = run("train", env=dict(env, SAGEMAKER_PROGRAM="train"))
    assert r.returncode == 0, r.stderr
    assert seen(mlroot)["env"]["SM_NUM_GPUS"] == "0"
    assert "CUDA_DEVICE_ORDER" not in seen(mlroot)["env"]
    assert not log.exists(), log.read_text()
    # with a GPU node present the same library is used: the check above could have failed
    sysroot.add("dev/nvidia0")
    devices(run, env)
    assert log.exists() and "nvmlInit_v2" in log.read_text()


# ---- counts and fields ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,count", [("init ok\n", 0), (f"gpu {H100}\n", 1), (f"gpus 8 {H100}\n", 8)])
def test_gpu_counts_and_json_fields(run, nvml, spec, count):
    j, r = devices(run, nvml("driver 550.54.15\ncuda 12040\n" + spec))
    assert j["num_gpus"] == count
    assert len(j["devices"]) == count
    assert j["driver_version"] == "550.54.15" and j["cuda_version"] == "12.4"
    assert backend(j, "nvidia")["state"] == "ok"
    for i, d in enumerate(j["devices"]):
        for key in ("backend", "index", "uuid", "name", "memory_total", "pci_bus_id", "health", "reason"):
            assert key in d, key
        assert d["backend"] == "nvidia" and d["index"] == i
        assert d["uuid"] == f"GPU-fa4e0000-0000-0000-0000-{i:012x}"
        assert d["name"] == "NVIDIA H100 80GB HBM3" and d["memory_total"] == 85520809984
        assert d["pci_bus_id"] == f"0000:{0x10 + 0x10 * i:02x}:00.0"  # NVML's 8-digit domain shortened, lower case
        assert d["health"] == "ok" and d["reason"] is None and d["visible"] is True
    # one line per device in the log, on stderr
    assert r.stderr.count("device: nvidia GPU") == count


def test_table_for_people(run, nvml):
    r = run("devices", env=nvml(f"gpus 2 {H100}\ngpu ecc=1\n"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["BACKEND", "INDEX", "NAME"]
    assert "GPU-fa4e0000-0000-0000-0000-000000000002" in r.stdout and "FAILED: uncorrected volatile ECC" in r.stdout
    assert "SM_NUM_GPUS=3" in r.stdout


def test_env_and_job_get_the_count(mlroot, run, nvml):
    env = nvml(f"gpus 8 {H100}\n")
    r = run("env", "--json", env=env)
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["env"]
    assert e["SM_NUM_GPUS"] == "8"
    assert json.loads(e["SM_TRAINING_ENV"])["num_gpus"] == 8
    assert e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # a backend's default
    dump_env_script(mlroot)
    r = run("train", env=dict(env, SAGEMAKER_PROGRAM="train", CUDA_DEVICE_ORDER="FASTEST_FIRST"))
    assert r.returncode == 0, r.stderr
    s = seen(mlroot)["env"]
    assert s["SM_NUM_GPUS"] == "8"
    assert s["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"  # the user's value wins


def test_mig_children_listed_under_their_gpu(run, nvml):
    spec = f"gpu {H100}\ngpu {H100} mig=on\nmig name=\"1g.10gb\" mem=10737418240\nmig name=\"1g.10gb\" slot=3\n"
    j, _ = devices(run, nvml(spec))
    assert j["num_gpus"] == 2  # GPUs, as nvidia-smi --list-gpus counts them
    d = j["devices"]
    assert [(x["index"], x["parent"]) for x in d] == [(0, None), (1, None), (0, 1), (3, 1)]
    assert d[1]["mig"] is True
    assert d[2]["uuid"].startswith("MIG-") and d[2]["memory_total"] == 10737418240
    assert d[3]["pci_bus_id"] == d[1]["pci_bus_id"]


# ---- visibility -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env,visible", [
    ({"CUDA_VISIBLE_DEVICES": "0,2"}, [0, 2]),
    ({"CUDA_VISIBLE_DEVICES": ""}, []),
    ({"CUDA_VISIBLE_DEVICES": "1,-1,3"}, [1]),
    ({"CUDA_VISIBLE_DEVICES": "GPU-fa4e0000-0000-0000-0000-000000000003"}, [3]),
    ({"CUDA_VISIBLE_DEVICES": "GPU-fa4e0000-0000-0000-0000-00000000000"}, [0, 1, 2, 3]),  # a prefix, as CUDA allows
    ({"NVIDIA_VISIBLE_DEVICES": "all"}, [0, 1, 2, 3]),
    ({"NVIDIA_VISIBLE_DEVICES": "none"}, []),
    ({"NVIDIA_VISIBLE_DEVICES": "void"}, []),
    ({"NVIDIA_VISIBLE_DEVICES": "1,3"}, [1, 3]),  # more GPUs than listed: not yet applied by a runtime
    ({"NVIDIA_VISIBLE_DEVICES": "GPU-fa4e0000-0000-0000-0000-000000000002"}, [2]),
    ({"NVIDIA_VISIBLE_DEVICES": "1,3", "CUDA_VISIBLE_DEVICES": "1"}, [3]),  # CUDA counts what the runtime left
])
def test_visibility_variables(run, nvml, env, visible):
    j, _ = devices(run, nvml(f"gpus 4 {H100}\n", **env))
    assert [d["index"] for d in j["devices"] if d["visible"]] == visible
    assert len(j["devices"]) == 4  # hidden devices are still listed
    assert j["num_gpus"] == len(visible)


def test_cuda_visible_devices_cut_short_is_a_warning(run, nvml):
    j, r = devices(run, nvml(f"gpus 4 {H100}\n", CUDA_VISIBLE_DEVICES="all"))
    assert j["num_gpus"] == 0
    assert "CUDA_VISIBLE_DEVICES=all: CUDA reads only the first 0 entries" in r.stderr
    j, r = devices(run, nvml(f"gpus 4 {H100}\n", CUDA_VISIBLE_DEVICES="0,2"))
    assert "CUDA_VISIBLE_DEVICES" not in r.stderr


def test_mig_uuid_in_cuda_visible_devices(run, nvml):
    spec = f"gpu {H100}\ngpu {H100} mig=on\nmig\nmig\n"
    j, _ = devices(run, nvml(spec, CUDA_VISIBLE_DEVICES="MIG-fa4e0001-0000-0000-0000-000000000001"))
    vis = [(d["index"], d["parent"]) for d in j["devices"] if d["visible"]]
    assert vis == [(1, None), (1, 1)]
    assert j["num_gpus"] == 1


# ---- health check ---------------------------------------------------------------------------------------------------

BAD = f"gpu {H100}\ngpu {H100} ecc=3\ngpu {H100} query_error=GPU_IS_LOST\ngpu handle_error=NO_PERMISSION\n"


def test_unhealthy_gpus_listed_with_reason(run, nvml):
    j, _ = devices(run, nvml(BAD))
    h = [(d["index"], d["health"]) for d in j["devices"]]
    assert h == [(0, "ok"), (1, "failed"), (2, "failed"), (3, "failed")]
    assert "uncorrected volatile ECC errors: 3" in j["devices"][1]["reason"]
    assert "GPU_IS_LOST" in j["devices"][2]["reason"]
    assert "NO_PERMISSION" in j["devices"][3]["reason"]


def test_train_refuses_bad_gpu_before_the_program(mlroot, run, nvml):
    mlroot.script("train.sh", "touch \"$SM_MODEL_DIR/ran\"\n")
    r = run("train", env=nvml(BAD, SAGEMAKER_PROGRAM="train.sh"))
    assert r.returncode == EXIT_DEVICE, r.stderr
    assert not (mlroot.path / "model" / "ran").exists()
    f = mlroot.failure_text()
    assert f.startswith("DeviceHealthError:\n"), f
    assert "nvidia GPU 1 (GPU-fa4e0000-0000-0000-0000-000000000001): uncorrected volatile ECC errors: 3" in f
    assert "nvidia GPU 2 (no UUID): nvmlDeviceGetUUID: GPU is lost (NVML_ERROR_GPU_IS_LOST)" in f  # it answers nothing
    assert "nvidia GPU 3 (no UUID)" in f and "NO_PERMISSION" in f
    assert "health_check = warn" in f  # the way out
    assert "GPU 0 " not in f
    assert not mlroot.success.exists()


def test_hidden_bad_gpu_does_not_stop_the_job(mlroot, run, nvml):
    mlroot.script("train.sh", "exit 0\n")
    r = run("train", env=nvml(BAD, SAGEMAKER_PROGRAM="train.sh", CUDA_VISIBLE_DEVICES="0"))
    assert r.returncode == 0, r.stderr
    assert mlroot.success.exists()


@pytest.mark.parametrize("mode", ["warn", "off"])
def test_warn_and_off_modes_run_the_job(mlroot, run, nvml, tmp_path, mode):
    ini = tmp_path / "smhost.ini"
    ini.write_text(f"[devices]\nhealth_check = {mode}\n")
    dump_env_script(mlroot)
    r = run("train", env=nvml(BAD, SAGEMAKER_PROGRAM="train", SMHOST_CONFIG=str(ini)))
    assert r.returncode == 0, r.stderr
    assert seen(mlroot)["env"]["SM_NUM_GPUS"] == "4"
    warned = "failed the health check; [devices] health_check = warn" in r.stderr
    assert warned == (mode == "warn"), r.stderr
    assert "GPU-fa4e0000-0000-0000-0000-000000000001" in r.stderr  # the device log line names it either way


def test_bad_health_check_value_is_a_config_error(run, tmp_path):
    ini = tmp_path / "smhost.ini"
    ini.write_text("[devices]\nhealth_check = sometimes\n")
    r = run("devices", env={"SMHOST_CONFIG": str(ini)})
    assert r.returncode == 78
    assert "health_check" in r.stderr and "fail, warn or off" in r.stderr


# ---- fallbacks ------------------------------------------------------------------------------------------------------

def test_nvml_init_failure_falls_back_to_proc_scan(mlroot, run, nvml, sysroot):
    for bus in ("0000:10:00.0", "0000:20:00.0"):
        sysroot.add(f"proc/driver/nvidia/gpus/{bus}/information", "Model: x\n")
    env = nvml("init DRIVER_NOT_LOADED\n")
    j, r = devices(run, env)
    b = backend(j, "nvidia")
    assert b["state"] == "fallback" and b["fallback_count"] == 2
    assert "nvmlInit_v2 failed: Driver Not Loaded" in b["message"]
    assert j["num_gpus"] == 2 and j["devices"] == []
    assert "WARNING" in r.stderr and "NVML" in r.stderr
    mlroot.script("train.sh", "echo \"gpus=$SM_NUM_GPUS\"\n")
    r = run("train", env=dict(env, SAGEMAKER_PROGRAM="train.sh"))
    assert r.returncode == 0, r.stderr  # a warning, never a failed job
    assert "gpus=2" in r.stdout


def test_missing_library_falls_back_to_dev_scan(run, sysroot, nvml):
    for n in range(4):
        sysroot.add(f"dev/nvidia{n}")
    sysroot.add("dev/nvidiactl")
    env = nvml("", lib="/nonexistent/libnvidia-ml.so.1")
    j, r = devices(run, env)
    b = backend(j, "nvidia")
    assert b["state"] == "fallback" and j["num_gpus"] == 4
    assert "NVML (/nonexistent/libnvidia-ml.so.1) cannot be loaded" in b["message"]
    assert "SMHOST_NVML_LIBRARY" in b["message"]


def test_library_without_v2_symbols_is_a_missing_feature_not_a_crash(run, nvml, sysroot):
    assert LEGACY_NVML.exists()
    sysroot.add("dev/nvidia0")
    j, r = devices(run, nvml(f"gpu {H100}\n", lib=LEGACY_NVML))
    b = backend(j, "nvidia")
    assert b["state"] == "fallback" and "nvmlInit_v2" in b["message"], b
    assert j["num_gpus"] == 1  # from /dev/nvidia0


def test_no_gpu_anywhere_is_zero(run, nvml):
    j, _ = devices(run, nvml("", lib="/nonexistent/libnvidia-ml.so.1"))
    assert j["num_gpus"] == 0  # library, then scan (empty), then 0


# ---- neuron ---------------------------------------------------------------------------------------------------------

def neuron_tree(sysroot):
    for n in range(3):
        sysroot.add(f"dev/neuron{n}")
    # current layout for neuron0 and neuron1, the pre-2.31 one for neuron2
    for n in (0, 1):
        d = f"sys/devices/virtual/neuron_device/neuron{n}"
        sysroot.add(f"{d}/core_count", "2\n")
        sysroot.add(f"{d}/info/architecture/device_name", "Trainium\n")
        sysroot.add(f"{d}/info/serial_number", f"SN-000{n}\n")
    sysroot.add("sys/class/neuron_device/neuron2/neuron_core0/")
    sysroot.add("sys/class/neuron_device/neuron2/neuron_core1/")
    sysroot.add("sys/class/neuron_device/neuron2/neuron_core2/")
    sysroot.add("sys/devices/virtual/neuron_device/neuron7/core_count", "2\n")  # not passed in: ignored


def test_neuron_devices_from_both_sysfs_layouts(run, sysroot):
    neuron_tree(sysroot)
    j, r = devices(run, {"SMHOST_TEST_SYSROOT": str(sysroot.path)})
    assert backend(j, "neuron")["state"] == "ok", backend(j, "neuron")
    d = j["devices"]
    assert [(x["index"], x["cores"], x["uuid"]) for x in d] == [(0, 2, "SN-0000"), (1, 2, "SN-0001"), (2, 3, None)]
    assert d[0]["name"] == "Trainium" and d[0]["class"] == "neuron"
    assert j["num_neurons"] == 7 and j["num_gpus"] == 0
    assert backend(j, "neuron")["sysfs_layout"] == "mixed"


@pytest.mark.parametrize("cores,expect", [("0-2", 3), ("1,4-6", 4), ("6", 1)])
def test_neuron_rt_visible_cores(run, sysroot, cores, expect):
    neuron_tree(sysroot)
    j, _ = devices(run, {"SMHOST_TEST_SYSROOT": str(sysroot.path), "NEURON_RT_VISIBLE_CORES": cores})
    assert j["num_neurons"] == expect
    assert sum(d["visible_cores"] for d in j["devices"]) == expect


def test_neuron_bad_visible_cores_falls_back(run, sysroot):
    neuron_tree(sysroot)
    j, r = devices(run, {"SMHOST_TEST_SYSROOT": str(sysroot.path), "NEURON_RT_VISIBLE_CORES": "3-1"})
    b = backend(j, "neuron")
    assert b["state"] == "fallback" and "NEURON_RT_VISIBLE_CORES='3-1'" in b["message"]


def test_neuron_count_reaches_the_job(mlroot, run, sysroot):
    neuron_tree(sysroot)
    dump_env_script(mlroot)
    r = run("train", env={"SMHOST_TEST_SYSROOT": str(sysroot.path), "SAGEMAKER_PROGRAM": "train"})
    assert r.returncode == 0, r.stderr
    assert seen(mlroot)["env"]["SM_NUM_NEURONS"] == "7"


# ---- amd ------------------------------------------------------------------------------------------------------------

def test_amd_through_rocm_smi_double(run, sysroot, tmp_path):
    spec = tmp_path / "rsmi.spec"
    spec.write_text("gpu name=MI300X uid=1a2b3c4d5e6f7a8b bdf=0000:c1:00.0 mem=206158430208\n"
                    "gpu name=MI300X uid=ffff bdf=0001:02:1f.7 mem=206158430208 error=PERMISSION\n")
    sysroot.add("dev/kfd")
    env = {"SMHOST_TEST_SYSROOT": str(sysroot.path), "SMHOST_ROCM_SMI_LIBRARY": str(FAKE_RSMI),
           "FAKE_ROCM_SMI_SPEC": str(spec)}
    j, _ = devices(run, env)
    d = j["devices"]
    assert [(x["backend"], x["uuid"], x["pci_bus_id"]) for x in d][:1] == [
        ("amd", "GPU-1a2b3c4d5e6f7a8b", "0000:c1:00.0")]
    assert d[0]["memory_total"] == 206158430208 and d[0]["health"] == "ok"
    assert d[1]["health"] == "failed" and "PERMISSION" in d[1]["reason"]
    assert j["num_gpus"] == 2
    j, _ = devices(run, dict(env, ROCR_VISIBLE_DEVICES="GPU-1a2b"))
    assert [x["visible"] for x in j["devices"]] == [True, False] and j["num_gpus"] == 1


# ---- third-party backends (ABI 1.1) ---------------------------------------------------------------------------------

@pytest.fixture
def testdev(tmp_path):
    """(env) for a job whose only backend is the made-up 'testdev' plugin, plus the devices_runner runner."""
    d = tmp_path / "plugins"
    d.mkdir()
    for n in ("testdev_backend", "devices_runner"):
        shutil.copy(TEST_PLUGIN_DIR / f"{n}.so", d / f"{n}.so")
    os.rename(d / "testdev_backend.so", d / "testdev.so")  # found by name: <name>.so

    def _env(ini="", **extra):
        f = tmp_path / "smhost.ini"
        f.write_text("[devices]\nbackends = testdev\n" + ini)
        e = {"SMHOST_PLUGIN_PATH": str(d), "SMHOST_CONFIG": str(f)}
        e.update(extra)
        return e

    return _env


def test_v1_1_backend_and_runner_through_the_host_api(mlroot, run, testdev):
    mlroot.script("job.devrunner", "x\n", mode=0o644)
    r = run("train", env=testdev(SAGEMAKER_PROGRAM="job.devrunner", TESTDEV_VISIBLE="1"))
    assert r.returncode == 0, r.stderr
    out = (mlroot.path / "model" / "devices_runner.txt").read_text().splitlines()
    assert out[0] == "count=2 num_gpus=1"
    assert out[1] == "testdev 0 testdev-0 0000:01:00.0 health=0 visible=0 mem=1073741824"
    assert out[2] == "testdev 1 testdev-1 0000:02:00.0 health=0 visible=1 mem=2147483648"
    assert out[3] == "past_end=NULL"


def test_backend_env_default_only_when_unset(mlroot, run, testdev):
    dump_env_script(mlroot)
    r = run("train", env=testdev(SAGEMAKER_PROGRAM="train"))
    assert r.returncode == 0, r.stderr
    assert seen(mlroot)["env"]["TESTDEV_DEFAULT"] == "from-backend"
    r = run("train", env=testdev(SAGEMAKER_PROGRAM="train", TESTDEV_DEFAULT="mine"))
    assert seen(mlroot)["env"]["TESTDEV_DEFAULT"] == "mine"


@pytest.mark.parametrize("mode,state,text", [
    ("crash", "fallback", "while this backend was running"),  # signal 11 (under ASan: its exit status)
    ("error", "fallback", "libtestdev.so.1 cannot be loaded"),
    ("absent", "absent", "no test devices today"),
])
def test_backend_failures_never_fail_the_job(mlroot, run, testdev, mode, state, text):
    env = testdev(TESTDEV_MODE=mode)
    j, r = devices(run, env)
    b = backend(j, "testdev")
    assert b["state"] == state and text in b["message"], b
    assert j["devices"] == []  # what a crashing backend reported first is dropped
    assert j["num_gpus"] == 0  # no scan knows testdev: 0
    mlroot.script("train.sh", "exit 0\n")
    r = run("train", env=dict(env, SAGEMAKER_PROGRAM="train.sh"))
    assert r.returncode == 0, r.stderr


def test_hung_backend_is_killed_and_the_job_runs(mlroot, run, testdev):
    env = testdev(ini="probe_timeout_seconds = 1\n", TESTDEV_MODE="hang")
    t = time.monotonic()
    j, r = devices(run, env)
    assert time.monotonic() - t < 10
    b = backend(j, "testdev")
    assert b["state"] == "fallback" and "did not finish within 1 s" in b["message"], b
    mlroot.script("train.sh", "exit 0\n")
    r = run("train", env=dict(env, SAGEMAKER_PROGRAM="train.sh"))
    assert r.returncode == 0, r.stderr
    assert "did not finish within 1 s" in r.stderr


def test_isolate_gives_each_local_rank_its_device(run, testdev):
    j, _ = devices(run, testdev())
    assert "isolation" not in j  # off by default: every rank sees every device
    j, _ = devices(run, testdev(ini="isolate = true\n"))
    assert j["isolation"] == {"0": {"TESTDEV_VISIBLE": "testdev-0"}, "1": {"TESTDEV_VISIBLE": "testdev-1"}}


def test_isolate_nvidia_by_uuid(run, nvml, tmp_path):
    ini = tmp_path / "iso.ini"
    ini.write_text("[devices]\nisolate = true\n")
    j, _ = devices(run, nvml(f"gpus 4 {H100}\n", SMHOST_CONFIG=str(ini), CUDA_VISIBLE_DEVICES="1,2"))
    assert j["isolation"] == {"0": {"CUDA_VISIBLE_DEVICES": "GPU-fa4e0000-0000-0000-0000-000000000001"},
                              "1": {"CUDA_VISIBLE_DEVICES": "GPU-fa4e0000-0000-0000-0000-000000000002"}}


def test_plugins_lists_backends(run, testdev):
    r = run("plugins", env=testdev())
    text = r.stdout + r.stderr
    for name in ("nvidia", "neuron", "amd", "testdev"):
        line = next((l for l in text.splitlines() if l.startswith(name + " ")), None)
        assert line and "backend" in line and "ABI 1.1" in line, text
    testdev_lines = text.split("testdev", 1)[1].split("\n")[:3]
    assert not any("refused" in l for l in testdev_lines), text


# ---- python and serve -----------------------------------------------------------------------------------------------

def test_import_smhost_devices(mlroot, run, nvml):
    mlroot.script("train.py", """
        import json, os, smhost
        json.dump({"devices": smhost.devices, "num_gpus": smhost.num_gpus},
                  open(os.path.join(smhost.model_dir, "devs.json"), "w"))
        """)
    r = run("train", env=nvml(f"gpu {H100}\ngpu ecc=unsupported\n", SAGEMAKER_PROGRAM="train.py"))
    assert r.returncode == 0, r.stderr
    got = json.loads((mlroot.path / "model" / "devs.json").read_text())
    assert got["num_gpus"] == 2
    d = got["devices"][0]
    assert d["backend"] == "nvidia" and d["uuid"] == "GPU-fa4e0000-0000-0000-0000-000000000000"
    assert d["memory_total"] == 85520809984 and d["health"] == "ok" and d["visible"] is True and d["parent"] is None
    assert got["devices"][1]["health"] == "ok"  # no ECC support is no error


def test_serve_refuses_bad_gpu_before_ready(mlroot, run, nvml):
    t = time.monotonic()
    r = run("serve", env=nvml(BAD, SAGEMAKER_BIND_TO_PORT="1"), timeout=30)
    assert r.returncode == EXIT_DEVICE, r.stderr
    assert time.monotonic() - t < 20
    assert "DeviceHealthError" in r.stderr and "GPU-fa4e0000-0000-0000-0000-000000000001" in r.stderr


def test_serve_on_healthy_gpus_gets_ready(mlroot, nvml):
    from test_serve import Server, NATIVE
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy(NATIVE, code / "serve_test.so")
    (mlroot.path / "model" / "model.txt").write_text("the-model")
    s = Server(mlroot, nvml(f"gpus 2 {H100}\n"), workers=1)
    try:
        s.wait_ready()
    finally:
        rc, err = s.stop()
    assert "device: nvidia GPU 1 (GPU-fa4e0000-0000-0000-0000-000000000001)" in err


def test_native_trainer_reads_the_device_list(mlroot, run, nvml, tmp_path):
    from test_native import compile_trainer, install_program
    built = compile_trainer(tmp_path, "libdevs.so", r"""
#include <stdio.h>
#include <smhost/trainer.h>
#include <smhost/device.h>

SMH_TRAINER(smh_train) {
    (void)err, (void)errlen;
    if (!SMH_HOST_HAS(host, device_get)) return 3;
    for (size_t i = 0; i < host->device_count(job); i++) {
        const smh_device *d = host->device_get(job, i);
        printf("dev %s %d %s %s\n", d->backend, d->index, d->uuid, d->health == SMH_HEALTH_OK ? "ok" : "bad");
    }
    return 0;
}
""")
    install_program(mlroot, built)
    r = run("train", env=nvml(f"gpus 2 {H100}\n", SAGEMAKER_PROGRAM="libdevs.so"))
    assert r.returncode == 0, r.stderr
    assert "dev nvidia 0 GPU-fa4e0000-0000-0000-0000-000000000000 ok\n" in r.stdout
    assert "dev nvidia 1 GPU-fa4e0000-0000-0000-0000-000000000001 ok\n" in r.stdout
