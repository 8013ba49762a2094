"""Black-box tests of `smhost serve`: a real HTTP client (http.client) against the running binary.

Native-handler tests use build/tests/plugins/serve_test.so (tests/plugins/serve_test.c documents how its
custom attributes drive it); Python tests use pyhandler with small inference.py files.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import textwrap
import threading
import time

import pytest

from conftest import TEST_PLUGIN_DIR, start_smhost

NATIVE = TEST_PLUGIN_DIR / "serve_test.so"
NATIVE_INLINE = TEST_PLUGIN_DIR / "serve_test_inline.so"  # the same handler, declaring SMH_HANDLER_THREAD_SAFE


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, mlroot, env=None, workers=2, **popen):
        """popen: extra Popen arguments (test_serve_hostile's preexec_fn that joins a cgroup)."""
        self.port = free_port()
        e = {"SAGEMAKER_BIND_TO_PORT": str(self.port), "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
        e.update(env or {})
        self.proc = start_smhost(["serve"], mlroot, env=e, **popen)
        self._err = None

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def invoke(self, body, content_type="application/json", accept=None, attrs=None, path="/invocations", **kw):
        h = {"Content-Type": content_type}
        if accept:
            h["Accept"] = accept
        if attrs:
            h["X-Amzn-SageMaker-Custom-Attributes"] = attrs
        return self.request("POST", path, body=body, headers=h, **kw)

    def oversized(self, length):
        """Announce a body of `length` bytes, send only 64 KiB of it and read the answer: a 413 must come before
        the body was read whole."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {length}\r\n\r\n".encode() + b"x" * 65536)
            r = http.client.HTTPResponse(sock)
            r.begin()
            return r.status, r.read()

    def ping(self):
        return self.request("GET", "/ping", timeout=2)[0]

    def wait_ready(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"smhost serve exited {self.proc.returncode}: {self.stop()[1]}")
            try:
                if self.ping() == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("not ready in time: " + self.stop()[1])

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except Exception:
            self.proc.kill()
            out, err = self.proc.communicate()
        if self._err is None:
            self._err = err
        return self.proc.returncode, self._err


@pytest.fixture
def serve(mlroot):
    servers = []

    def _start(env=None, workers=2, ready=True, **popen):
        s = Server(mlroot, env, workers, **popen)
        servers.append(s)
        if ready:
            s.wait_ready()
        return s

    yield _start
    for s in servers:
        s.stop()


@pytest.fixture
def native_root(mlroot):
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy(NATIVE, code / "serve_test.so")
    (mlroot.path / "model" / "model.txt").write_text("the-model")
    return mlroot


@pytest.fixture
def inline_root(mlroot):
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy(NATIVE_INLINE, code / "serve_test_inline.so")
    (mlroot.path / "model" / "model.txt").write_text("the-model")
    return mlroot


def py_root(mlroot, source):
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    return mlroot


def err_json(body):
    j = json.loads(body)
    assert set(j) == {"code", "type", "message"}
    return j


# ---- the HTTP contract, native handler ------------------------------------------------------------------------
def test_native_round_trips_and_headers(native_root, serve):
    s = serve()
    st, h, body = s.invoke(b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv", attrs="trace=1")
    assert (st, body) == (200, b"[0,2]")
    assert h["content-type"] == "application/json"
    assert h["x-amzn-sagemaker-custom-attributes"] == "echo:trace=1"
    st, h, body = s.invoke(b"5.1,3.5,1.4,0.2\n", "text/csv", accept="text/csv")
    assert (st, body, h["content-type"]) == (200, b"0\n", "text/csv")
    st, h, body = s.invoke(b'{"x": [1, 2]}')
    assert (st, body) == (200, b'{"x": [1, 2]}')
    assert "x-amzn-sagemaker-custom-attributes" not in h
    st, h, body = s.request("GET", "/execution-parameters")
    assert st == 200 and json.loads(body) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD",
                                              "MaxPayloadInMB": 6}
    st, h, body = s.request("GET", "/ping")
    assert (st, body) == (200, b"")


def test_native_errors(native_root, serve):
    s = serve()
    st, h, body = s.request("GET", "/nothing-here")
    assert st == 404 and err_json(body)["code"] == 404 and h["content-type"] == "application/json"
    assert s.request("GET", "/invocations")[0] == 404
    st, body = s.oversized(6 * 1024 * 1024 + 1)
    assert st == 413 and "6291456" in err_json(body)["message"]
    assert s.invoke(b"x" * (6 * 1024 * 1024))[0] == 200  # exactly the limit is fine
    st, _, body = s.invoke(b"<a/>", "application/xml")
    assert st == 415 and "application/xml" in err_json(body)["message"]
    st, _, body = s.invoke(b"[1]", accept="image/png")
    assert st == 406 and "image/png" in err_json(body)["message"]
    st, _, body = s.invoke(b"[1]", attrs="fail")
    assert st == 500 and err_json(body)["message"] == "ValueError: the test handler was asked to fail"
    st, _, body = s.invoke(b"[1]", attrs="status=429")
    assert (st, body) == (429, b"[1]")
    assert s.ping() == 200


def test_payload_limit_from_env_and_chunked(native_root, serve):
    s = serve(env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    assert s.oversized(1024 * 1024 + 1)[0] == 413
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    c.request("POST", "/invocations", body=iter([b"x" * 700000, b"y" * 700000]),
              headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert c.getresponse().status == 413
    c.close()
    assert s.invoke(b"[1]")[0] == 200


def test_timeout_replaces_worker_and_ping_stays_fast(native_root, serve):
    s = serve(env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}, workers=1)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=s.invoke(b"[1]", attrs="sleep=10000")))
    t0 = time.time()
    t.start()
    time.sleep(0.3)
    p0 = time.time()
    assert s.ping() == 200  # the only worker is busy, /ping still answers at once
    assert time.time() - p0 < 1
    t.join(15)
    st, _, body = result["r"]
    assert st == 504 and "SAGEMAKER_MODEL_SERVER_TIMEOUT=2" in err_json(body)["message"]
    assert time.time() - t0 < 6
    end = time.time() + 10
    while s.invoke(b"[2]", timeout=10)[0] != 200:  # the replacement worker answers
        assert time.time() < end
        time.sleep(0.2)
    assert s.invoke(b"[3]")[2] == b"[3]"


def test_crashing_worker_gets_5xx_and_is_replaced(native_root, serve):
    s = serve(workers=1)
    st, _, body = s.invoke(b"[1]", attrs="crash", timeout=10)
    assert 500 <= st <= 599 and "died" in err_json(body)["message"]
    end = time.time() + 10
    while True:
        st, _, body = s.invoke(b"[7]", timeout=10)
        if st == 200:
            break
        assert time.time() < end, body
        time.sleep(0.2)
    assert body == b"[7]"
    rc, err = s.stop()
    assert rc == 0 and "died while handling a request" in err


def test_concurrent_requests_nothing_lost(native_root, serve):
    s = serve(workers=3)
    results, lock = [], threading.Lock()

    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for i in range(40):
            body = json.dumps({"client": k, "i": i}).encode()
            c.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            with lock:
                results.append((r.status, r.read() == body))
        c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 12 * 40 and all(r == (200, True) for r in results)


def test_graceful_shutdown_finishes_in_flight(native_root, serve):
    s = serve(workers=2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(s.invoke(b"[5]", attrs="sleep=1500"))) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):  # no new connections once SIGTERM arrived
        s.request("GET", "/ping", timeout=2)
    for t in threads:
        t.join(10)
    assert sorted(r[0] for r in results) == [200, 200] and all(r[2] == b"[5]" for r in results)
    rc, err = s.stop()
    assert rc == 0 and "finishing 2 request(s) in flight" in err


def test_grace_runs_out(native_root, serve):
    s = serve(workers=1, env={"SMHOST_SERVE_GRACE_SECONDS": "1"})
    results = []
    t = threading.Thread(target=lambda: results.append(s.invoke(b"[5]", attrs="sleep=20000")))
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    rc, err = s.stop()
    t.join(10)
    assert rc == 0 and time.time() - t0 < 6 and "grace period over" in err
    assert len(results) == 1 and results[0][0] == 500  # its worker was stopped: a 5xx, not a hang


def test_preload_loads_once_and_per_worker_when_disabled(native_root, serve, tmp_path):
    log = tmp_path / "loads"
    s = serve(workers=3, env={"SERVE_TEST_LOAD_LOG": str(log)})
    assert len(log.read_text().split()) == 1
    s.stop()
    log.unlink()
    s = serve(workers=3, env={"SERVE_TEST_LOAD_LOG": str(log), "SMHOST_SERVE_PRELOAD": "false"})
    assert len(set(log.read_text().split())) == 3


def test_model_load_failure_exits_with_message(native_root):
    (native_root.path / "model" / "broken").write_text("")
    s = Server(native_root)
    rc, err = s.stop(timeout=30) if s.proc.wait(30) is not None else (None, "")
    assert rc == 1 and "is broken" in err


def test_bad_settings_are_config_errors(native_root):
    s = Server(native_root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "lots"})
    s.proc.wait(10)
    rc, err = s.stop()
    assert rc == 78 and "SAGEMAKER_MODEL_SERVER_WORKERS=lots" in err
    s = Server(native_root, env={"SAGEMAKER_PROGRAM": "missing.so"})
    s.proc.wait(10)
    rc, err = s.stop()
    assert rc == 78 and "missing.so" in err
    s = Server(native_root, env={"SMHOST_SERVE_PIPELINE": "0"})
    s.proc.wait(10)
    rc, err = s.stop()
    assert rc == 78 and "SMHOST_SERVE_PIPELINE=0" in err


# ---- multi-model ----------------------------------------------------------------------------------------------
def test_multi_model(native_root, serve):
    models = native_root.path / "models"
    for name in ("a", "b", "big", "bad"):
        (models / name).mkdir(parents=True)
        (models / name / "model.txt").write_text(f"model-{name}")
    (models / "big" / "huge").write_text("")
    (models / "bad" / "broken").write_text("")
    s = serve(env={"SAGEMAKER_MULTI_MODEL": "true"})
    load = lambda n, u: s.request("POST", "/models", json.dumps({"model_name": n, "url": u}),
                                  {"Content-Type": "application/json"})
    assert load("a", str(models / "a"))[0] == 200
    assert load("b", "b")[0] == 200  # relative to <root>/models
    assert load("a", str(models / "a"))[0] == 409
    assert load("big", str(models / "big"))[0] == 507
    st, _, body = load("bad", str(models / "bad"))
    assert st == 500 and "broken" in err_json(body)["message"]
    assert load("nope", str(models / "nope"))[0] == 404
    assert s.request("POST", "/models", b"{}", {"Content-Type": "application/json"})[0] == 400
    st, _, body = s.request("GET", "/models")
    assert st == 200 and sorted(m["modelName"] for m in json.loads(body)["models"]) == ["a", "b"]
    st, _, body = s.request("GET", "/models/b")
    assert st == 200 and json.loads(body) == [{"modelName": "b", "modelUrl": str(models / "b")}]
    assert s.request("GET", "/models/zzz")[0] == 404
    for _ in range(6):  # every worker answers for both models
        for n in ("a", "b"):
            st, _, body = s.invoke(b"", attrs="whoami", path=f"/models/{n}/invoke")
            assert (st, body) == (200, f"model-{n}".encode())
    assert s.invoke(b"[1]", path="/models/zzz/invoke")[0] == 404
    assert s.request("DELETE", "/models/a")[0] == 200
    assert s.request("DELETE", "/models/a")[0] == 404
    assert s.invoke(b"", attrs="whoami", path="/models/a/invoke")[0] == 404
    assert s.invoke(b"", attrs="whoami", path="/models/b/invoke")[2] == b"model-b"
    (models / "a" / "model.txt").write_text("model-a2")
    assert load("a", str(models / "a"))[0] == 200  # reloaded: every worker drops the old one
    for _ in range(4):
        assert s.invoke(b"", attrs="whoami", path="/models/a/invoke")[2] == b"model-a2"
    assert s.request("POST", "/invocations", b"[1]")[0] == 404


# ---- inline handlers (SMH_HANDLER_THREAD_SAFE) ---------------------------------------------------------------
def test_inline_handler_runs_in_the_front_without_workers(inline_root, serve, tmp_path):
    log = tmp_path / "loads"
    s = serve(env={"SERVE_TEST_LOAD_LOG": str(log)})
    assert log.read_text().split() == [str(s.proc.pid)]  # loaded once, in the front
    assert children(s.proc.pid) == []  # no zygote, no workers
    st, h, body = s.invoke(b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv", attrs="trace=1")
    assert (st, body, h["content-type"]) == (200, b"[0,2]", "application/json")
    assert h["x-amzn-sagemaker-custom-attributes"] == "echo:trace=1"
    st, h, body = s.invoke(b"5.1,3.5,1.4,0.2\n", "text/csv", accept="text/csv")
    assert (st, body, h["content-type"]) == (200, b"0\n", "text/csv")
    assert s.invoke(b"[1]", attrs="whoami")[2] == b"the-model"
    st, _, body = s.invoke(b"[1]", attrs="fail")  # the same error answers as from a worker
    assert st == 500 and err_json(body)["message"] == "ValueError: the test handler was asked to fail"
    assert s.invoke(b"[1]", accept="image/png")[0] == 406
    assert s.invoke(b"[1]", attrs="status=429")[:3:2] == (429, b"[1]")
    st, body = s.oversized(6 * 1024 * 1024 + 1)
    assert st == 413
    assert s.ping() == 200
    rc, err = s.stop()
    assert rc == 0 and "declares SMH_HANDLER_THREAD_SAFE" in err


def test_inline_concurrent_requests_nothing_lost(inline_root, serve):
    s = serve()
    results = []

    def client(k):
        for j in range(50):
            st, _, body = s.invoke(json.dumps([k, j]).encode())
            results.append(st == 200 and json.loads(body) == [k, j])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 400 and all(results)


def test_inline_runs_one_thread_per_worker_and_finishes_in_flight_on_sigterm(inline_root, serve):
    s = serve(workers=2)
    out = []

    def slow():
        out.append(s.invoke(b"[1]", attrs="sleep=1500")[0])

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert s.ping() == 200 and s.invoke(b"[2]")[2] == b"[2]"  # the other thread answers while one is in invoke()
    assert time.monotonic() - t0 < 1.0
    s.proc.send_signal(signal.SIGTERM)
    t.join()
    assert out == [200]  # the request in flight was finished
    rc, err = s.stop()
    assert rc == 0 and "inline on 2 thread(s)" in err and "finishing 1 request(s)" in err


def test_inline_never_keeps_the_handler_in_workers(inline_root, serve, tmp_path):
    log = tmp_path / "loads"
    s = serve(env={"SERVE_TEST_LOAD_LOG": str(log), "SMHOST_SERVE_INLINE": "never"})
    (zygote,) = children(s.proc.pid)
    assert log.read_text().split() == [str(zygote)]
    assert s.invoke(b"[1]")[0] == 200


def test_handler_without_the_flag_stays_in_workers(native_root, serve, tmp_path):
    log = tmp_path / "loads"
    s = serve(env={"SERVE_TEST_LOAD_LOG": str(log)})
    (zygote,) = children(s.proc.pid)
    assert log.read_text().split() == [str(zygote)]  # the front only read the flags, in a throwaway child
    rc, err = s.stop()
    assert "SMH_HANDLER_THREAD_SAFE" not in err


def test_inline_bad_setting_and_failed_load(inline_root):
    s = Server(inline_root, env={"SMHOST_SERVE_INLINE": "sometimes"})
    s.proc.wait(10)
    rc, err = s.stop()
    assert rc == 78 and "SMHOST_SERVE_INLINE=sometimes" in err and "never" in err
    (inline_root.path / "model" / "broken").write_text("")
    s = Server(inline_root)
    s.proc.wait(10)
    rc, err = s.stop()
    assert rc == 1 and "is broken" in err


def test_inline_handler_crash_stops_the_server(inline_root, serve):
    """The documented price of SMH_HANDLER_THREAD_SAFE: no worker to lose, so a crash ends smhost serve."""
    s = serve()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        s.invoke(b"[1]", attrs="crash")
    from conftest import SANITIZED

    rc = s.proc.wait(10)
    assert rc == -signal.SIGSEGV or (SANITIZED and rc != 0)  # ASan reports the SEGV and exits


# ---- Python handlers -----------------------------------------------------------------------------------------
IRIS_TRAIN = """
import joblib, sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1])
"""


def test_python_sklearn_sample(mlroot, serve):
    import subprocess

    from conftest import REPO

    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True)
    shutil.copy(REPO / "samples" / "sklearn-iris" / "ml" / "code" / "inference.py", code / "inference.py")
    subprocess.run(["/usr/bin/python3", "-c", IRIS_TRAIN, str(mlroot.path / "model" / "model.joblib")], check=True)
    s = serve()
    st, h, body = s.invoke(b"[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]")
    assert st == 200 and json.loads(body) == ["setosa", "virginica"] and h["content-type"] == "application/json"
    st, h, body = s.invoke(b"5.1,3.5,1.4,0.2\n", "text/csv", accept="text/csv")
    assert (st, body, h["content-type"]) == (200, b"setosa\n", "text/csv")
    st, _, body = s.invoke(b"5.1,3.5,1.4,0.2", "text/csv", accept="*/*")
    assert st == 200 and json.loads(body) == ["setosa"]
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([[6.7, 3.0, 5.2, 2.3]]))
    st, _, body = s.invoke(buf.getvalue(), "application/x-npy", accept="application/x-npy")
    assert st == 200 and np.load(io.BytesIO(body)).tolist() == ["virginica"]
    assert s.invoke(b"<x/>", "application/xml")[0] == 415
    assert s.invoke(b"[[1,2,3,4]]", accept="image/png")[0] == 406
    st, _, body = s.invoke(b"[[1, 2]]")
    assert st == 500 and "ValueError" in err_json(body)["message"]


def test_python_ping_503_until_loaded_and_errors(mlroot, serve):
    py_root(mlroot, """
        import time

        class Boom(Exception):
            status_code = 422

        def model_fn(model_dir):
            time.sleep(2)
            return {"scale": 3}

        def input_fn(data, content_type, context):
            assert context.custom_attributes == "k=v"
            if data == b"boom":
                raise Boom("custom status")
            if data == b"raise":
                raise RuntimeError("handler exploded")
            return float(data)

        def predict_fn(x, model):
            return x * model["scale"]

        def output_fn(y, accept, context):
            context.response_custom_attributes = "scaled"
            return str(y), "text/plain"
        """)
    s = serve(ready=False, env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    end = time.time() + 20
    while True:
        try:
            st = s.ping()
            break
        except OSError:
            assert time.time() < end
            time.sleep(0.05)
    assert st == 503
    assert s.invoke(b"2", attrs="k=v")[0] == 503
    s.wait_ready()
    st, h, body = s.invoke(b"2", "text/plain", attrs="k=v")
    assert (st, body, h["content-type"], h["x-amzn-sagemaker-custom-attributes"]) == (200, b"6.0", "text/plain",
                                                                                        "scaled")
    st, _, body = s.invoke(b"boom", "text/plain", attrs="k=v")
    assert st == 422 and err_json(body)["message"] == "custom status"
    st, _, body = s.invoke(b"raise", "text/plain", attrs="k=v")
    assert st == 500 and err_json(body)["message"] == "RuntimeError: handler exploded"
    rc, err = s.stop()
    assert rc == 0 and "RuntimeError: handler exploded" in err and "GET /ping" not in err


def test_python_transform_fn_and_program(mlroot, serve):
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True)
    (code / "handler.py").write_text(textwrap.dedent("""
        import os
        def model_fn(model_dir):
            return os.getpid()
        def transform_fn(model, data, content_type, accept):
            return data.upper() + b"|" + accept.encode(), "text/plain"
        """))
    s = serve(env={"SAGEMAKER_PROGRAM": "handler.py"})
    st, h, body = s.invoke(b"abc", "text/plain")
    assert (st, body, h["content-type"]) == (200, b"ABC|application/json", "text/plain")


PY_WHERE = """
    import json, os, sys
    def model_fn(model_dir):
        return os.getpid()
    def transform_fn(model, data, content_type, accept):
        return json.dumps({"exe": os.readlink("/proc/self/exe"), "pid": os.getpid(), "ppid": os.getppid(),
                           "model": model, "executable": sys.executable}), "application/json"
    """


def test_python_handler_zygote_and_workers_are_python3(mlroot, serve, tmp_path):
    """The zygote of a Python handler exec()s /usr/bin/python3 with pyboot.so preloaded: the model is loaded there
    once and the workers it forks run the handler on python3's own interpreter, with no trace of the preload in
    their environment."""
    from conftest import SANITIZED, SMHOST

    py_root(mlroot, PY_WHERE.replace('"executable": sys.executable}', '"executable": sys.executable, '
                                     '"env": dict(os.environ)}'))
    # The dynamic linker's own account of what pyhandler.so's calls bind to (one file per process).
    s = serve(workers=2, env={"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")})
    (zygote,) = children(s.proc.pid)
    python3 = os.path.realpath("/usr/bin/python3")
    assert os.readlink(f"/proc/{zygote}/exe") == python3
    st, _, body = s.invoke(b"x")
    assert st == 200, body
    w = json.loads(body)
    assert w["exe"] == python3
    assert w["ppid"] == zygote and w["model"] == zygote  # loaded once, in the zygote, before the fork
    assert w["executable"] == "/usr/bin/python3"
    assert "LD_PRELOAD" not in w["env"] and "SMHOST_PYBOOT" not in w["env"]
    # pyhandler.so still names libpython3.11.so (so `smhost plugins` can load it in smhost), but in python3 the
    # dynamic linker binds its calls to the executable's exported interpreter: libpython's copy never runs.
    binds = [line for line in (tmp_path / f"ld.{zygote}").read_text().splitlines()
             if "pyhandler.so" in line.split(" to ")[0] and "`Py" in line]
    assert any("Py_InitializeFromConfig" in line for line in binds), binds[:5]
    assert binds and all("python3" in line.split(" to ")[1] and "libpython" not in line.split(" to ")[1]
                         for line in binds), [line for line in binds if "libpython" in line.split(" to ")[1]][:5]
    maps = [line.split()[-1] for line in open(f"/proc/{w['pid']}/maps") if "/" in line]
    assert str(SMHOST.resolve()) not in maps  # nothing of the front's process image is left
    assert any(m.endswith("/pyboot.so") for m in maps)
    assert any("libasan" in m for m in maps) == SANITIZED  # sanitizer builds preload the ASan runtime first


def test_python_handler_without_pyboot_still_serves(mlroot, serve, tmp_path, monkeypatch):
    """smhost installed without pyboot.so: a warning, and the zygote runs the handler on the shared libpython."""
    import conftest

    inst = tmp_path / "inst"
    (inst / "bin").mkdir(parents=True)
    shutil.copy2(conftest.SMHOST, inst / "bin" / "smhost")
    (inst / "lib" / "smhost" / "internal").mkdir(parents=True)
    (inst / "lib" / "smhost" / "plugins").symlink_to(conftest.BUILD / "lib" / "smhost" / "plugins")
    for so in (conftest.BUILD / "lib" / "smhost" / "internal").glob("*.so"):
        if so.name != "pyboot.so":
            (inst / "lib" / "smhost" / "internal" / so.name).symlink_to(so)
    monkeypatch.setattr(conftest, "SMHOST", inst / "bin" / "smhost")
    py_root(mlroot, PY_WHERE)
    s = serve(workers=1)
    st, _, body = s.invoke(b"x")
    assert st == 200, body
    assert json.loads(body)["exe"] == str(inst / "bin" / "smhost")
    rc, err = s.stop()
    assert "pyboot.so" in err and "reinstall smhost" in err and "shared libpython" in err


def test_python_missing_model_fn_fails_startup(mlroot):
    py_root(mlroot, "def predict_fn(x, m):\n    return x\n")
    s = Server(mlroot)
    s.proc.wait(30)
    rc, err = s.stop()
    assert rc == 1 and "no model_fn" in err


def test_python_requirements_installed_first(mlroot, serve):
    py_root(mlroot, """
        import numpy
        def model_fn(model_dir):
            return 1
        def transform_fn(model, data, content_type, accept):
            return b"ok"
        """)
    (mlroot.path / "model" / "code" / "requirements.txt").write_text("numpy\n")  # already there: no network needed
    s = serve(workers=1)
    assert s.invoke(b"x")[2] == b"ok"
    rc, err = s.stop()
    assert "requirements.txt" in err and "pip install" in err


def test_python_bad_requirements_stop_serve(mlroot):
    py_root(mlroot, "def model_fn(d):\n    return 1\n")
    (mlroot.path / "model" / "code" / "requirements.txt").write_text("this is === not a requirement\n")
    s = Server(mlroot)
    s.proc.wait(60)
    rc, err = s.stop()
    assert rc != 0 and "InstallRequirementsError" in err and "not a requirement" in err


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def test_worker_killed_while_idle_is_replaced(native_root, serve):
    s = serve(workers=2)
    (zygote,) = children(s.proc.pid)
    workers = children(zygote)
    assert len(workers) == 2
    for w in workers:
        os.kill(w, signal.SIGKILL)
    end = time.time() + 10
    while True:  # requests may meet a dead worker (5xx) until the replacements are up, never hang
        st = s.invoke(b"[1]", timeout=10)[0]
        if st == 200 and len(set(children(zygote)) - set(workers)) == 2:
            break
        assert st in (200, 500, 503) and time.time() < end
        time.sleep(0.1)
    assert s.ping() == 200
    rc, err = s.stop()
    assert rc == 0 and "replacing it" in err


def test_requests_pipelined_behind_a_crash_or_timeout_are_served(native_root, serve):
    """With one worker and fast requests the front sends requests ahead to the busy worker (pipelining).  When
    the request it is running crashes or overruns its deadline, only that one gets a 5xx: those queued behind it
    were never started and go to the replacement worker."""
    s = serve(workers=1, env={"SMHOST_SERVE_PIPELINE": "8", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"})
    for i in range(30):  # the front learns the handler is fast, so it pipelines
        assert s.invoke(b"[%d]" % i)[0] == 200
    for bad, status in (("sleep=400,crash", 500), ("sleep=10000", 504)):
        results = {}

        def call(k, attrs=None):
            results[k] = s.invoke(b"[%d]" % k, attrs=attrs, timeout=30)

        first = threading.Thread(target=call, args=(-1, bad))
        first.start()
        time.sleep(0.1)
        rest = [threading.Thread(target=call, args=(k,)) for k in range(6)]
        for t in rest:
            t.start()
        for t in [first] + rest:
            t.join(30)
        assert results[-1][0] == status, results[-1]
        assert all(results[k][0] == 200 and results[k][2] == b"[%d]" % k for k in range(6)), results
        while s.invoke(b"[1]")[0] != 200:  # settle the moving average again
            pass
        for i in range(30):
            assert s.invoke(b"[%d]" % i)[0] == 200
    rc, err = s.stop()
    assert rc == 0 and "died while handling a request" in err and "timed out" in err


# ---- PID-1 duties: the same as `smhost train`'s (tests/blackbox/test_supervisor.py) ---------------------------
def proc_state(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return rest[0], int(rest[1])


def test_workers_get_a_clean_signal_mask_and_dispositions(native_root, serve):
    s = serve(workers=1)
    st, _, body = s.invoke(b"[1]", attrs="signals")
    assert st == 200, body
    lines = body.decode().splitlines()
    assert "SigBlk:\t0000000000000000" in lines, lines
    assert "SigIgn:\t0000000000000000" in lines, lines
    # the zygote (and so the workers) is not in smhost's process group: ^C or a group signal reaches only the front
    (zygote,) = children(s.proc.pid)
    assert os.getpgid(zygote) != os.getpgid(s.proc.pid)


def test_orphans_of_a_handler_are_reaped_while_serving(native_root, serve):
    s = serve(workers=1)
    st, _, body = s.invoke(b"[1]", attrs="orphans")
    assert st == 200, body
    orphans = [int(p) for p in body.split()]
    assert len(orphans) == 5
    # double-forked, so orphans at once: smhost (the subreaper) adopts them, and reaps them when they exit
    assert [proc_state(p)[1] if proc_state(p) else None for p in orphans] == [s.proc.pid] * 5
    end = time.time() + 10
    zombie_since = {}  # when each was first seen dead and not yet reaped
    while any(proc_state(p) for p in orphans):  # they exit after 2 s; a zombie that nobody reaps stays listed
        assert time.time() < end, {p: proc_state(p) for p in orphans}
        for p in orphans:
            ps = proc_state(p)
            if ps and ps[0] == "Z":
                zombie_since.setdefault(p, time.monotonic())
        time.sleep(0.01)
        # reaped when their SIGCHLD arrives, not at the loop's once-a-second sweep
        for p, t in zombie_since.items():
            assert proc_state(p) is None or time.monotonic() - t < 0.2, f"orphan {p} stayed a zombie"
    kids = {p: proc_state(p) for p in children(s.proc.pid)}
    assert kids, "smhost serve lists no children: the zygote at least must be there"
    assert not [p for p, ps in kids.items() if ps and ps[0] == "Z"], kids
    assert s.invoke(b"[2]")[0] == 200


def test_sigterm_ends_what_a_handler_left_behind(native_root, serve):
    s = serve(workers=2)
    st, _, body = s.invoke(b"[1]", attrs="daemon")
    assert st == 200, body
    daemon = int(body)
    st, _, body = s.invoke(b"[1]", attrs="daemon-noterm")
    assert st == 200, body
    stubborn = int(body)
    try:
        for pid in (daemon, stubborn):  # double-forked orphans in their own session: smhost adopted them
            assert proc_state(pid) is not None and proc_state(pid)[1] == s.proc.pid, (pid, proc_state(pid))
        t0 = time.time()
        rc, err = s.stop()
        assert rc == 0, err
        assert time.time() - t0 < 10
        for pid in (daemon, stubborn):
            assert proc_state(pid) is None, f"process {pid} outlived smhost serve: {proc_state(pid)}"
    finally:
        for pid in (daemon, stubborn):
            if proc_state(pid):
                os.kill(pid, signal.SIGKILL)
    assert "the handler left 2 process(es) behind: sent SIGTERM" in err, err
    # the daemon with default dispositions died of the SIGTERM; the one ignoring it needed the SIGKILL
    assert "killed 1 leftover process(es) of the handler with SIGKILL" in err, err


def test_as_pid1_reaps_orphans_and_takes_sigterm(native_root):
    """In a new PID namespace `smhost serve` is PID 1: orphans of a handler are reaped while it serves, and a
    SIGTERM from outside the namespace stops it cleanly."""
    import subprocess

    from conftest import SMHOST, base_env

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to make a PID namespace")
    port = free_port()
    p = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", str(SMHOST), "serve"],
        env=base_env(native_root, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_MODEL_SERVER_WORKERS="2"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    s = Server.__new__(Server)
    s.port, s.proc, s._err = port, p, None
    try:
        try:
            s.wait_ready()
        except AssertionError as e:
            if "unshare" in str(e):
                pytest.skip("unshare --pid is not permitted here")
            raise
        st, _, body = s.invoke(b"[1]", attrs="orphans")
        assert st == 200, body
        orphans = [int(x) for x in body.split()]  # pids inside the namespace
        st, _, body = s.invoke(b"[1]", attrs="daemon-noterm")
        assert st == 200, body
        daemon = int(body)

        def procs():
            st, _, body = s.invoke(b"[1]", attrs="procs")
            assert st == 200, body
            return {int(l.split()[0]): l.split(maxsplit=3)[1:] for l in body.decode().splitlines()}

        ps = procs()
        assert ps.get(1, [None, None, ""])[2] == "smhost", ps
        assert all(ps[p][1] == "1" for p in orphans + [daemon]), ps  # the orphans were adopted by PID 1
        end = time.time() + 10
        while any(p in ps for p in orphans):  # they exit after 2 s; a zombie nobody reaps stays listed
            assert time.time() < end, ps
            time.sleep(0.05)
            ps = procs()
        assert not [l for l in ps.values() if l[0] == "Z"], ps
        # smhost's pid outside the namespace: the only child of unshare
        kids = children(p.pid)
        assert len(kids) == 1
        os.kill(kids[0], signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "no new connections" in err
        assert "the handler left 1 process(es) behind: sent SIGTERM" in err, err
        assert "killed 1 leftover process(es) of the handler with SIGKILL" in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
