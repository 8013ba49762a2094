"""Black-box tests of `smhost serve` against hostile or broken clients (issue 13, docs/serving.md "Limits").

Real sockets on loopback against the real binary, with the native test handler (tests/plugins/serve_test.c).
"""
import http.client
import os
import resource
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import SANITIZED
from test_serve import Server, err_json, native_root, serve  # noqa: F401  (native_root, serve: fixtures)

MIB = 1024 * 1024


def raw_post(port, length, body_bytes=None, attrs=None, ctype="application/json"):
    """A connected socket that sent a POST of `length` bytes (all of them unless body_bytes says how many)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n"
            + (f"X-Amzn-SageMaker-Custom-Attributes: {attrs}\r\n" if attrs else "") + "\r\n")
    sock.sendall(head.encode())
    n = length if body_bytes is None else body_bytes
    sock.sendall(b"1" * n)
    return sock


def post(port, body, attrs=None, ctype="application/json", timeout=30):
    """POST /invocations with http.client, which sends the whole body before reading the answer."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Content-Type": ctype}
        if attrs:
            h["X-Amzn-SageMaker-Custom-Attributes"] = attrs
        c.request("POST", "/invocations", body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


# ---- defect 1: bytes queued in the front are bounded; requests of clients that went away are dropped ------------
def test_queue_budget_answers_503_and_frees_bodies_of_clients_that_left(native_root, serve):
    s = serve(env={"SMHOST_SERVE_QUEUE_MB": "16", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6"}, workers=1)
    busy = {}
    t = threading.Thread(target=lambda: busy.update(r=post(s.port, b"[0]", attrs="sleep=3000")))
    t.start()
    time.sleep(0.3)
    # two 6 MiB requests queue behind the busy worker (12 MiB of 16); each would keep the worker 2 s
    waiting = [raw_post(s.port, 6 * MIB, attrs="sleep=2000") for _ in range(2)]
    time.sleep(0.3)
    st, h, body = post(s.port, b"1" * (6 * MIB))  # a third does not fit: 503, read by http.client
    assert st == 503 and h.get("retry-after") == "1", body
    assert "SMHOST_SERVE_QUEUE_MB" in err_json(body)["message"]
    # their clients go away: the queued requests are dropped and their bodies freed, so the next one fits
    for w in waiting:
        w.close()
    time.sleep(0.5)
    result = {}
    t2 = threading.Thread(target=lambda: result.update(r=post(s.port, b"[7]" + b" " * (6 * MIB - 10))))
    t2.start()
    t.join(10)
    done_busy = time.time()
    assert busy["r"][0] == 200
    t2.join(10)
    assert result["r"][0] == 200, result["r"]
    # the abandoned requests (2 s each) never ran: the new one came right after the busy one
    assert time.time() - done_busy < 1.5
    rc, err = s.stop()
    assert rc == 0 and "dropped queued requests whose client went away" in err


def make_memory_cgroup(limit):
    """A memory cgroup limited to `limit` bytes (v1 or v2); returns (procs file, remove()) or a reason string."""
    name = f"smhost-test-{os.getpid()}-{time.monotonic_ns()}"
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    try:
        if v2.exists():
            if "memory" not in (Path("/sys/fs/cgroup/cgroup.subtree_control").read_text().split()):
                return "cgroup v2 without the memory controller enabled for children"
            d = Path("/sys/fs/cgroup") / name
            d.mkdir()
            (d / "memory.max").write_text(str(limit))
            (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
        else:
            base = Path("/sys/fs/cgroup/memory")
            if not (base / "memory.limit_in_bytes").exists():
                return "no cgroup memory controller mounted"
            d = base / name
            d.mkdir()
            (d / "memory.limit_in_bytes").write_text(str(limit))
            sw = d / "memory.memsw.limit_in_bytes"
            if sw.exists():
                try:
                    sw.write_text(str(limit))
                except OSError:
                    pass
    except OSError as e:
        return f"cannot create a memory cgroup: {e}"

    def remove():
        for _ in range(50):
            try:
                d.rmdir()
                return
            except OSError:
                time.sleep(0.1)

    return d / "cgroup.procs", remove


# Not against the sanitizer build: it checks that the front's own memory stays under a 256 MiB limit, and under ASan
# (shadow memory, the quarantine of freed blocks) the same flood peaks at 172 MB instead of 78 MB (cgroup v1
# max_usage_in_bytes, 2 runs each): the margin left would be ASan's, not the front's.
@pytest.mark.nosan
def test_front_survives_a_flood_of_large_bodies_in_a_memory_limited_cgroup(native_root, serve):
    limit = 256 * MIB
    cg = make_memory_cgroup(limit)
    if isinstance(cg, str):
        pytest.skip(cg)
    procs, remove = cg
    try:
        s = serve(workers=1, preexec_fn=lambda: procs.write_text(str(os.getpid())))
        busy = threading.Thread(target=lambda: post(s.port, b"[0]", attrs="sleep=3000"))
        busy.start()
        time.sleep(0.2)
        body = b"1" * (6 * MIB)
        statuses, lock = [], threading.Lock()

        def client():
            try:
                st, h, _ = post(s.port, body, ctype="application/octet-stream", timeout=60)
                with lock:
                    statuses.append((st, h.get("retry-after")))
            except OSError as e:
                with lock:
                    statuses.append((repr(e), None))

        # 120 x 6 MiB = 720 MiB offered to a front in a 256 MiB cgroup
        threads = [threading.Thread(target=client) for _ in range(120)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        busy.join(10)
        assert s.proc.poll() is None, f"the front died: {s.stop()[1][-2000:]}"
        assert s.ping() == 200
        # every client got an answer: 415 from the handler (taken) or 503 with Retry-After (over the budget)
        assert len(statuses) == 120 and all(st in (415, 503) for st, _ in statuses), statuses
        assert any(st == 503 and ra == "1" for st, ra in statuses)
        assert any(st == 415 for st, _ in statuses)
    finally:
        if 's' in locals():
            s.stop()
        remove()


# ---- defect 2: connections cannot be exhausted; deadlines for headers and bodies -----------------------------
def closed_within(sock, seconds):
    """Seconds until the server closed `sock` (None when it did not within `seconds`)."""
    t0 = time.time()
    sock.settimeout(0.2)
    while time.time() - t0 < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.time() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0
    return None


def test_header_and_body_deadlines_close_silent_and_trickling_connections(native_root, serve):
    s = serve(env={"SMHOST_SERVE_HEADER_TIMEOUT": "2", "SMHOST_SERVE_BODY_TIMEOUT": "2",
                   "SMHOST_SERVE_BODY_MIN_RATE": "1000"})
    silent = socket.create_connection(("127.0.0.1", s.port))
    trickle = socket.create_connection(("127.0.0.1", s.port))
    slow_body = socket.create_connection(("127.0.0.1", s.port))
    slow_body.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n")
    t0 = time.time()
    closed = {}
    head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
    i = 0
    while time.time() - t0 < 6 and len(closed) < 3:
        for name, sock in (("trickle", trickle), ("slow_body", slow_body)):
            if name not in closed:  # one byte every 0.1 s: each byte would reset an idle timeout
                try:
                    sock.send(head[i % len(head):i % len(head) + 1] if name == "trickle" else b"1")
                except OSError:
                    closed[name] = time.time() - t0
        for name, sock in (("silent", silent), ("trickle", trickle), ("slow_body", slow_body)):
            if name not in closed:
                sock.setblocking(False)
                try:
                    if sock.recv(65536) == b"":
                        closed[name] = time.time() - t0
                except BlockingIOError:
                    pass
                except OSError:
                    closed[name] = time.time() - t0
                sock.setblocking(True)
        i += 1
        time.sleep(0.1)
    assert set(closed) == {"silent", "trickle", "slow_body"}, closed
    assert all(1.5 < t < 4 for t in closed.values()), closed
    # a client that keeps to the limits is served
    assert s.invoke(b"[1]")[0] == 200
    for sock in (silent, trickle, slow_body):
        sock.close()
    rc, err = s.stop()
    assert "SMHOST_SERVE_HEADER_TIMEOUT" in err and "SMHOST_SERVE_BODY_MIN_RATE" in err


def test_ping_answers_within_2s_while_5000_connections_idle_or_trickle(native_root, serve):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 6000:
        pytest.skip(f"this process may open only {hard} files (ulimit -Hn); the test needs 6000")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    s = serve(env={"SMHOST_SERVE_MAX_CONNECTIONS": "4096"})
    socks = []
    try:
        t0 = time.time()
        for k in range(5000):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", s.port))
            socks.append(c)
        opened = time.time() - t0
        slowest = 0.0
        end = time.time() + 8
        n = 0
        while time.time() < end:
            for c in socks[:500]:  # some trickle: a byte of a request header now and then
                try:
                    c.send(b"G")
                except OSError:
                    pass
            p0 = time.time()
            assert s.ping() == 200
            slowest = max(slowest, time.time() - p0)
            n += 1
            time.sleep(0.3)
        assert n >= 10 and slowest < 2, (n, slowest, opened)
        assert s.invoke(b"[1]")[0] == 200
    finally:
        for c in socks:
            c.close()
    rc, err = s.stop()
    assert "SMHOST_SERVE_MAX_CONNECTIONS" in err


# ---- defect 4: every client reads the 413 (lingering close) -------------------------------------------------
def test_http_client_reads_the_413_of_a_large_body(native_root, serve):
    s = serve(env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    for _ in range(3):  # http.client sends the whole body before it reads: closing at once would reset it
        st, h, body = post(s.port, b"1" * (8 * MIB))
        assert st == 413 and "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in err_json(body)["message"]
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)  # 28 MB chunked
    c.request("POST", "/invocations", body=iter([b"x" * MIB] * 28), headers={"Content-Type": "application/json"},
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413 and "SAGEMAKER_MAX_PAYLOAD_IN_MB" in err_json(r.read())["message"]
    c.close()
    assert s.invoke(b"[1]")[0] == 200


# ---- defect 5: a second server on the same port fails -------------------------------------------------------
def test_second_server_on_the_same_port_fails_with_71(native_root, serve):
    s = serve()
    other = Server(native_root, {"SAGEMAKER_BIND_TO_PORT": str(s.port)})
    other.port = s.port
    try:
        rc = other.proc.wait(20)
        err = other.proc.stderr.read()
    finally:
        if other.proc.poll() is None:
            other.proc.kill()
            other.proc.wait()
    assert rc == 71, err
    assert f"port {s.port}" in err and "SAGEMAKER_BIND_TO_PORT" in err
    for _ in range(10):  # every request reaches the first server
        assert s.ping() == 200



# ---- defect 6: strict framing (RFC 9112), client errors are 4xx ----------------------------------------------
def exchange(port, raw, wait=3):
    """Send raw bytes, read until the server closes or `wait` s pass: (status lines, closed, bytes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    sock.sendall(raw)
    data, closed, t0 = b"", False, time.time()
    try:
        while time.time() - t0 < wait:
            d = sock.recv(65536)
            if not d:
                closed = True
                break
            data += d
    except socket.timeout:
        pass
    sock.close()
    return [l.decode() for l in data.split(b"\r\n") if l.startswith(b"HTTP/1.")], closed, data


def test_request_smuggling_and_unsupported_codings_are_refused(native_root, serve):
    s = serve()
    # Content-Length and chunked: 400 and the connection closes, so the request hidden after it is not served
    smuggle = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    statuses, closed, data = exchange(s.port, smuggle)
    assert statuses == ["HTTP/1.1 400 Bad Request"] and closed, data
    assert b"Transfer-Encoding" in data and b'"code":400' in data
    # two Content-Length headers that differ
    statuses, closed, data = exchange(s.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                              b"\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n[1]xx")
    assert statuses == ["HTTP/1.1 400 Bad Request"] and closed, data
    # a transfer coding other than chunked: 501 at once, not a hang
    t0 = time.time()
    statuses, closed, data = exchange(s.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
                                              b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n")
    assert statuses == ["HTTP/1.1 501 Not Implemented"] and closed and time.time() - t0 < 2, data
    # the same Content-Length twice is one Content-Length
    statuses, closed, data = exchange(s.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                              b"\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n[1]", wait=1)
    assert statuses == ["HTTP/1.1 200 OK"] and data.endswith(b"[1]"), data
    assert s.ping() == 200


def test_malformed_bodies_are_400_for_the_default_codecs(mlroot, serve):
    from test_serve import py_root
    py_root(mlroot, """
        def model_fn(model_dir):
            return lambda x: x.sum(axis=1)
    """)
    s = serve(workers=1)
    assert s.invoke(b"[[1, 2], [3, 4]]")[2] == b"[3, 7]"
    for body, ctype in ((b"[1, 2", "application/json"), (b"\xff\xfe", "text/csv"),
                        (b"not an npy file", "application/x-npy")):
        st, _, out = s.invoke(body, ctype)
        assert st == 400 and ctype in err_json(out)["message"], (ctype, st, out)


# ---- defect 8 (HEAD /ping) ------------------------------------------------------------------------------------
def test_head_ping_is_200(native_root, serve):
    s = serve()
    st, _, body = s.request("HEAD", "/ping", timeout=2)
    assert st == 200 and body == b""


# ---- defect 8: access logs are opt-in; running short of descriptors is logged ----------------------------------
def test_access_log_is_opt_in_and_5xx_warnings_are_bounded(native_root, serve):
    quiet = serve()
    for _ in range(20):
        assert quiet.invoke(b"[1]")[0] == 200
    loud = serve(env={"SMHOST_SERVE_ACCESS_LOG": "true"})
    for _ in range(20):
        assert loud.invoke(b"[1]")[0] == 200
    _, qerr = quiet.stop()
    _, lerr = loud.stop()
    assert qerr.count("POST /invocations 200") == 0
    assert lerr.count("POST /invocations 200") == 20


def test_a_low_descriptor_limit_is_logged_and_ping_still_answers(native_root, serve):
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    s = serve(preexec_fn=low_nofile)
    socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(300)]
    try:
        time.sleep(0.5)
        t0 = time.time()
        assert s.ping() == 200 and time.time() - t0 < 2
    finally:
        for c in socks:
            c.close()
    _, err = s.stop()
    assert "ulimit -n" in err and "SMHOST_SERVE_MAX_CONNECTIONS" in err


# ---- defect 8: multi-model urls stay under the models root, names are bounded, models are evicted LRU ----------
def test_multi_model_urls_names_and_lru_eviction(native_root, serve, tmp_path):
    import json
    models = native_root.path / "models"
    for name in ("a", "b", "c"):
        (models / name).mkdir(parents=True)
        (models / name / "model.txt").write_text(f"model-{name}")
        (models / name / "alloc_mb").write_text("80")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.txt").write_text("outside")
    (models / "link").symlink_to(outside)
    s = serve(env={"SAGEMAKER_MULTI_MODEL": "true", "SMHOST_SERVE_MM_MEMORY_MB": "120"}, workers=1)

    def load(name, url):
        body = name if isinstance(name, bytes) else json.dumps({"model_name": name, "url": url}).encode()
        return s.request("POST", "/models", body, {"Content-Type": "application/json"})

    for url, status in (("../" * 20 + "etc", 403), ("", 400), ("link", 403), (str(outside), 403),
                        ("/etc", 403), ("nope", 404)):
        st, _, body = load("m", url)
        assert st == status, (url, st, body)
    assert load("x" * 1025, "a")[0] == 400
    assert load(b'{"model_name": "a\\u0000b", "url": "a"}', None)[0] == 400
    assert load("a\nb", "a")[0] == 400
    assert s.invoke(b"", path="/models/" + "x" * 1100 + "/invoke")[0] == 404
    # three 80 MiB models in a worker allowed 120 MiB: each load first unloads the least recently used one
    for name in ("a", "b", "c"):
        assert load(name, name)[0] == 200
    for name in ("a", "b", "c", "a", "c", "b"):
        st, _, body = s.invoke(b"", attrs="whoami", path=f"/models/{name}/invoke")
        assert (st, body) == (200, f"model-{name}".encode())
    if not SANITIZED:  # ASan keeps freed memory in quarantine: RSS says nothing there
        rss = max(rss_mib(p) for p in children(s.proc.pid))
        assert rss < 120 + 80 + 40, rss
    st, _, body = s.request("GET", "/models")  # evicted models stay registered
    assert sorted(m["modelName"] for m in json.loads(body)["models"]) == ["a", "b", "c"]
    _, err = s.stop()
    assert "used least recently" in err and "SMHOST_SERVE_MM_MEMORY_MB=120" in err


def children(pid):
    """Every process below pid."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p))
                out += children(int(p))
    return out


def rss_mib(pid):
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * os.sysconf("SC_PAGESIZE") // MIB
    except OSError:
        return 0


def test_a_worker_killed_by_the_oom_killer_is_named_so(native_root, serve):
    cg = make_memory_cgroup(256 * MIB)
    if isinstance(cg, str):
        pytest.skip(cg)
    procs, remove = cg
    try:
        s = serve(workers=1, preexec_fn=lambda: procs.write_text(str(os.getpid())))
        st, _, body = s.invoke(b"[1]", attrs="alloc=1024", timeout=30)
        assert st == 500 and "OOM killer" in err_json(body)["message"], body
        end = time.time() + 10
        while s.invoke(b"[2]", timeout=10)[0] != 200:  # replaced
            assert time.time() < end
            time.sleep(0.2)
        _, err = s.stop()
        assert "was killed by the OOM killer" in err and "256 MiB" in err
    finally:
        if "s" in locals():
            s.stop()
        remove()


def test_workers_are_recycled_after_max_requests(native_root, serve, tmp_path):
    loads = tmp_path / "loads.txt"
    s = serve(env={"SMHOST_SERVE_MAX_REQUESTS": "3", "SMHOST_SERVE_PRELOAD": "false",
                   "SERVE_TEST_LOAD_LOG": str(loads)}, workers=1)
    for k in range(7):
        st, _, body = s.invoke(f"[{k}]".encode(), timeout=30)
        assert (st, body) == (200, f"[{k}]".encode())
    pids = loads.read_text().split()
    assert len(set(pids)) >= 3, pids  # 7 requests, 3 per worker: at least three workers
    _, err = s.stop()
    assert "SMHOST_SERVE_MAX_REQUESTS=3" in err


def test_workers_are_not_recycled_by_default(native_root, serve, tmp_path):
    loads = tmp_path / "loads.txt"
    s = serve(env={"SMHOST_SERVE_PRELOAD": "false", "SERVE_TEST_LOAD_LOG": str(loads)}, workers=1)
    for k in range(20):
        assert s.invoke(b"[1]")[0] == 200
    assert len(set(loads.read_text().split())) == 1
