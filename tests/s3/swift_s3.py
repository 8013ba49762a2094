#!/usr/bin/python3
"""A real S3 server for smhost's tests: OpenStack Swift (Debian's swift-* packages) with the s3api middleware,
all in one on loopback.  One proxy, one account, one container and one object server, one-replica rings over
one directory-backed device, tempauth users, s3api verifying AWS SigV4 signatures.  Nothing is written outside
the directory given (Swift normally reads /etc/swift/swift.conf; the launcher points it at our copy).

    python3 tests/s3/swift_s3.py start DIR     starts the servers in the background, prints the endpoint
    python3 tests/s3/swift_s3.py stop DIR      stops them
    python3 tests/s3/swift_s3.py run DIR       starts them, waits for Ctrl-C, stops them

From Python: `srv = SwiftS3(dir); srv.start(); ... srv.stop()`; srv.endpoint, srv.access_key, srv.secret_key.
"""
import os
import signal
import socket
import subprocess
import sys
import time

PY = "/usr/bin/python3"
# tempauth: user `tester` in account `test` (s3api access key "test:tester", which contains a colon as AWS key
# ids may) and a second user in another account that owns nothing.
USERS = {"test:tester": "testing", "other:user": "otherpass"}
REGION = "us-east-1"

LAUNCHER = r'''
import sys
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=False))
'''


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class SwiftS3:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.procs = []
        self.ports = {}

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.ports["proxy"]

    access_key = "test:tester"
    secret_key = "testing"
    region = REGION

    def _write(self, name, text):
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def configure(self):
        os.makedirs(os.path.join(self.root, "srv", "d1"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "run"), exist_ok=True)
        for k in ("proxy", "account", "container", "object"):
            self.ports[k] = free_port()
        r = self.root
        self._write("swift.conf", "[swift-hash]\nswift_hash_path_suffix = smhosttest\nswift_hash_path_prefix = smhost\n"
                    "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
                    "[swift-constraints]\nmax_file_size = 5368709122\n")
        common = ("[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = %d\nworkers = 0\nswift_dir = {r}\ndevices = {r}/srv\n"
                  "mount_check = false\nlog_level = WARNING\nlog_address = {r}/run/nolog\nlog_udp_host = 127.0.0.1\n"
                  "log_udp_port = 9\nuser = %s\n").replace("{r}", r)
        me = __import__("pwd").getpwuid(os.getuid()).pw_name
        for kind in ("account", "container", "object"):
            self._write("%s-server.conf" % kind, (common % (self.ports[kind], me)) +
                        "[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n" % (kind, kind, kind)
                        + ("[%s-replicator]\n[%s-updater]\n[%s-auditor]\n" % (kind, kind, kind)))
        users = "".join("user_%s_%s = %s .admin\n" % (k.split(":")[0], k.split(":")[1], v) for k, v in USERS.items())
        self._write("proxy-server.conf", (common % (self.ports["proxy"], me)) +
                    "[pipeline:main]\n"
                    "pipeline = catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth copy slo dlo "
                    "proxy-logging proxy-server\n"
                    # generous backend timeouts: the tests share 2 CPUs with other builds (0.5 s by default)
                    "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\nconn_timeout = 5\n"
                    "node_timeout = 60\nrecoverable_node_timeout = 60\n"
                    "[filter:catch_errors]\nuse = egg:swift#catch_errors\n"
                    "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n"
                    "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n"
                    "[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:%d\n"
                    "[filter:listing_formats]\nuse = egg:swift#listing_formats\n"
                    "[filter:s3api]\nuse = egg:swift#s3api\nlocation = %s\ns3_acl = false\n"
                    "[filter:tempauth]\nuse = egg:swift#tempauth\n%s"
                    "[filter:copy]\nuse = egg:swift#copy\n"
                    "[filter:slo]\nuse = egg:swift#slo\n"
                    "[filter:dlo]\nuse = egg:swift#dlo\n" % (free_port(), REGION, users))
        for kind in ("account", "container", "object"):
            b = os.path.join(r, "%s.builder" % kind)
            for old in (b, os.path.join(r, "%s.ring.gz" % kind)):  # an earlier attempt's, with other ports
                if os.path.exists(old):
                    os.unlink(old)
            for args in (["create", "4", "1", "1"], ["add", "r1z1-127.0.0.1:%d/d1" % self.ports[kind], "100"],
                         ["rebalance"]):
                res = subprocess.run(["swift-ring-builder", b] + args, capture_output=True, text=True)
                if res.returncode not in (0, 1):  # 1 = "warning" for rebalance
                    raise RuntimeError("swift-ring-builder %s: %s%s" % (" ".join(args), res.stdout, res.stderr))

    def start(self, timeout=120, attempts=3):
        """Start the servers; a server that exits at once (a free port taken by someone else meanwhile) gets
        another try on fresh ports."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except BaseException as e:  # never leave servers behind
                self.stop()
                if attempt + 1 == attempts or not isinstance(e, RuntimeError) or "exited" not in str(e):
                    raise
                print("swift_s3: %s; starting again on other ports" % str(e)[:500], file=sys.stderr)

    def _start_once(self, timeout):
        self.configure()
        launcher = os.path.join(self.root, "launch.py")
        self._write("launch.py", LAUNCHER)
        for kind, section in (("account", "account-server"), ("container", "container-server"),
                              ("object", "object-server"), ("proxy", "proxy-server")):
            log = open(os.path.join(self.root, "run", "%s.log" % kind), "w")
            p = subprocess.Popen([PY, launcher, self.root, os.path.join(self.root, "%s-server.conf" % kind), section],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            self.procs.append(p)
        with open(os.path.join(self.root, "run", "pids"), "w") as f:
            f.write(" ".join(str(p.pid) for p in self.procs))
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        """Until a SigV4-signed request (ListBuckets) succeeds."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("a Swift server exited (%d); logs in %s/run: %s" %
                                       (p.returncode, self.root, self.logs()))
            res = self.curl("GET", "/", check=False)
            if res.returncode == 0 and b"ListAllMyBucketsResult" in res.stdout:
                return
            last = res.stdout[-300:] + res.stderr[-300:]
            time.sleep(0.3)
        raise RuntimeError("Swift s3api did not answer a signed request within %ds: %r %s" % (timeout, last, self.logs()))

    def logs(self):
        out = []
        for kind in ("account", "container", "object", "proxy"):
            try:
                with open(os.path.join(self.root, "run", "%s.log" % kind)) as f:
                    out.append("%s: %s" % (kind, f.read()[-2000:]))
            except OSError:
                pass
        return "\n".join(out)

    def curl(self, method, path, data_file=None, out_file=None, check=True, access=None, secret=None, extra=()):
        """A request signed by curl's own SigV4 (an independent implementation of smhost's signing)."""
        # The access key contains ':', which `curl --user` would split at: give it through a netrc file.
        netrc = os.path.join(self.root, "run", "netrc-%d" % os.getpid())
        with open(netrc, "w") as f:
            f.write("machine 127.0.0.1 login %s password %s\n" % (access or self.access_key, secret or self.secret_key))
        cmd = ["curl", "-sS", "-X", method, "--aws-sigv4", "aws:amz:%s:s3" % REGION, "--netrc-file", netrc,
               "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
        if data_file:
            if not os.path.isfile(data_file):  # curl would send an empty body and say nothing
                raise FileNotFoundError(data_file)
            cmd += ["--data-binary", "@" + data_file]
        if out_file:
            cmd += ["-o", out_file, "-w", "%{http_code}"]
        else:
            cmd += ["-w", "\n%{http_code}"]
        cmd += list(extra) + [self.endpoint + path]
        for attempt in range(3):  # the server, not smhost: a 503 under load is retried like any S3 client would
            res = subprocess.run(cmd, capture_output=True)
            if not res.stdout.strip().endswith(b"503") or attempt == 2:
                break
            time.sleep(1)
        if check and (res.returncode != 0 or not res.stdout.strip().endswith(b"200")):
            raise RuntimeError("curl %s %s: %r %r" % (method, path, res.stdout[-500:], res.stderr))
        return res

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop", "run"):
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[2]
    if sys.argv[1] == "stop":
        with open(os.path.join(root, "run", "pids")) as f:
            for pid in f.read().split():
                try:
                    os.killpg(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return 0
    os.makedirs(root, exist_ok=True)
    srv = SwiftS3(root)
    srv.start()
    print(srv.endpoint, flush=True)
    if sys.argv[1] == "run":
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        srv.stop()
    else:
        for p in srv.procs:  # detach: `stop DIR` ends them
            p.returncode = 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
