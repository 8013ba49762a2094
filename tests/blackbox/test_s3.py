"""S3 black-box tests: the real smhost against a real S3 server (OpenStack Swift with s3api, which verifies SigV4
signatures; tests/s3/swift_s3.py), started once per session on loopback.  Credentials come from the environment
or from a small container-credentials endpoint served here on loopback, as ECS/SageMaker would serve it."""
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import REPO, run_smhost, start_smhost

sys.path.insert(0, str(REPO / "tests" / "s3"))
import swift_s3  # noqa: E402

SECRET = swift_s3.SwiftS3.secret_key
TOKEN = "container-auth-token-4f1c9e"


def put_object(srv, key_encoded, path):
    srv.curl("PUT", "/bkt/" + key_encoded, data_file=str(path))


def get_object(srv, key_encoded, dest):
    res = srv.curl("GET", "/bkt/" + key_encoded, out_file=str(dest), check=False)
    return res.stdout.decode().strip()[-3:]


def make_code_tarball(tmp_path, script, extra_files=None):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "run.sh").write_text(script)
    (src / "run.sh").chmod(0o755)
    for name, data in (extra_files or {}).items():
        (src / name).write_bytes(data)
    tgz = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        for p in sorted(src.iterdir()):
            t.add(p, arcname=p.name)
    return tgz


def s3_env(srv, **extra):
    env = {"S3_ENDPOINT_URL": srv.endpoint, "AWS_ACCESS_KEY_ID": srv.access_key, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_EC2_METADATA_DISABLED": "true", "TRAINING_JOB_NAME": "job-1"}
    env.update(extra)
    return env


def all_output(r, mlroot):
    out = r.stdout + r.stderr
    f = mlroot.path / "output" / "failure"
    if f.exists():
        out += f.read_text()
    return out


CODE = "#!/bin/sh\necho \"code ran: SM_MODULE_DIR=$SM_MODULE_DIR\"\n"


@pytest.mark.parametrize("key,encoded", [("job/source/sourcedir.tar.gz", "job/source/sourcedir.tar.gz"),
                                         ("odd keys/a+b~c d.tar.gz", "odd%20keys/a%2Bb~c%20d.tar.gz")])
def test_download_with_environment_credentials(s3srv, mlroot, tmp_path, key, encoded):
    put_object(s3srv, encoded, make_code_tarball(tmp_path, CODE))
    url = "s3://bkt/" + key
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 0, r.stderr
    assert "code ran: SM_MODULE_DIR=" + url in r.stdout
    assert (mlroot.path / "code" / "run.sh").exists()
    assert SECRET not in r.stdout + r.stderr


def test_session_token_is_signed_and_never_shown(s3srv, mlroot, tmp_path):
    """A non-empty token goes out as a signed X-Amz-Security-Token (Swift checks the signature over it); an empty
    one sends no header at all."""
    put_object(s3srv, "tok/code.tar.gz", make_code_tarball(tmp_path, CODE))
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/tok/code.tar.gz", "sagemaker_program": "run.sh"})
    tok = "FwoGZXIvYXdzEJr//////////session+token/=="
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, AWS_SESSION_TOKEN=tok))
    assert r.returncode == 0, r.stderr
    assert tok not in r.stdout + r.stderr and "session+token" not in r.stdout + r.stderr
    shutil.rmtree(mlroot.path / "code")
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, AWS_SESSION_TOKEN=""))
    assert r.returncode == 0, r.stderr


def test_wrong_secret_is_access_denied_without_the_secret(s3srv, mlroot, tmp_path):
    put_object(s3srv, "deny/code.tar.gz", make_code_tarball(tmp_path, CODE))
    url = "s3://bkt/deny/code.tar.gz"
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    wrong = "not-the-secret-9d8c7b"
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, AWS_SECRET_ACCESS_KEY=wrong, AWS_SESSION_TOKEN="tok-123abc"))
    assert r.returncode == 77, r.stderr
    failure = mlroot.failure_text()
    assert url in failure and "403" in failure and "SignatureDoesNotMatch" in failure
    assert "AWS_ACCESS_KEY_ID" in failure  # where the credentials came from
    everything = all_output(r, mlroot)
    assert wrong not in everything and "tok-123abc" not in everything
    assert not any((mlroot.path / "code").iterdir())


def test_missing_key_and_bucket_are_404(s3srv, mlroot):
    url = "s3://bkt/no/such/key.tar.gz"
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 66, r.stderr
    failure = mlroot.failure_text()
    assert url in failure and "404" in failure and "NoSuchKey" in failure
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://nobucket/k.tar.gz", "sagemaker_program": "run.sh"})
    (mlroot.path / "output" / "failure").unlink()
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 66
    assert "NoSuchBucket" in mlroot.failure_text() and "s3://nobucket/k.tar.gz" in mlroot.failure_text()


@pytest.mark.parametrize("url,what", [("s3:///key.tar.gz", "no bucket"), ("s3://bkt/", "no object key"),
                                      ("s3://b*d/key", "bucket name")])
def test_malformed_s3_url(s3srv, mlroot, url, what):
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 65, r.stderr
    assert what in mlroot.failure_text() and url in mlroot.failure_text()


def test_unreachable_endpoint(mlroot):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = "s3://bkt/code.tar.gz"
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    env = {"S3_ENDPOINT_URL": "http://127.0.0.1:%d" % port, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    t0 = time.time()
    r = run_smhost(["train"], mlroot=mlroot, env=env)
    assert r.returncode == 69, r.stderr
    failure = mlroot.failure_text()
    assert url in failure and "cannot reach" in failure and "after 5 attempts" in failure
    assert time.time() - t0 < 20


def test_object_that_is_not_a_tarball(s3srv, mlroot, tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("just some text, not an archive\n" * 10)
    put_object(s3srv, "text/notes.txt", p)
    url = "s3://bkt/text/notes.txt"
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 65, r.stderr
    assert url in mlroot.failure_text() and "cannot be unpacked" in mlroot.failure_text()


# ---- the container credentials endpoint -------------------------------------------------------------------------
class CredsServer:
    """AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback: answers only with the right Authorization header."""

    def __init__(self, access, secret, expires_in=3600):
        self.access, self.secret, self.expires_in = access, secret, expires_in
        self.hits, self.denied = 0, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization") != TOKEN or self.path != "/v1/credentials":
                    outer.denied += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.hits += 1
                exp = datetime.now(timezone.utc) + timedelta(seconds=outer.expires_in)
                body = json.dumps({"AccessKeyId": outer.access, "SecretAccessKey": outer.secret, "Token": "",
                                   "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"), "RoleArn": "arn:x"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/v1/credentials" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def endpoint_env(srv, creds, **extra):
    env = {"S3_ENDPOINT_URL": srv.endpoint, "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds.url,
           "AWS_EC2_METADATA_DISABLED": "true", "TRAINING_JOB_NAME": "job-1"}
    env.update(extra)
    return env


@pytest.mark.parametrize("how", ["token", "token_file"])
def test_download_with_container_endpoint_credentials(s3srv, mlroot, tmp_path, how):
    put_object(s3srv, "ecs/code.tar.gz", make_code_tarball(tmp_path, CODE))
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/ecs/code.tar.gz", "sagemaker_program": "run.sh"})
    creds = CredsServer(s3srv.access_key, SECRET)
    try:
        if how == "token":
            extra = {"AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN}
        else:
            tf = tmp_path / "token"
            tf.write_text(TOKEN + "\n")
            extra = {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tf), "AWS_CONTAINER_AUTHORIZATION_TOKEN": "stale"}
        r = run_smhost(["train"], mlroot=mlroot, env=endpoint_env(s3srv, creds, **extra))
        assert r.returncode == 0, r.stderr
        assert "code ran" in r.stdout
        assert creds.hits == 1 and creds.denied == 0
        assert TOKEN not in r.stdout + r.stderr and SECRET not in r.stdout + r.stderr
    finally:
        creds.close()


def test_container_endpoint_refusing_the_token(s3srv, mlroot, tmp_path):
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/ecs/code.tar.gz", "sagemaker_program": "run.sh"})
    creds = CredsServer(s3srv.access_key, SECRET)
    try:
        bad = "wrong-token-7a6b5c"
        r = run_smhost(["train"], mlroot=mlroot,
                       env=endpoint_env(s3srv, creds, AWS_CONTAINER_AUTHORIZATION_TOKEN=bad))
        assert r.returncode == 77, r.stderr
        failure = mlroot.failure_text()
        assert "container credentials endpoint" in failure and "HTTP 401" in failure and creds.url in failure
        assert bad not in all_output(r, mlroot)
    finally:
        creds.close()


def test_full_uri_plain_http_to_another_host_is_refused(mlroot):
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/k.tar.gz", "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.1.2.3/creds",
                                                  "S3_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert r.returncode == 77
    assert "http://10.1.2.3/creds (AWS_CONTAINER_CREDENTIALS_FULL_URI)" in mlroot.failure_text()


def test_no_credentials_names_every_source(mlroot):
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/k.tar.gz", "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env={"AWS_EC2_METADATA_DISABLED": "true",
                                                  "S3_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert r.returncode == 77
    f = mlroot.failure_text()
    assert "no AWS credentials" in f and "AWS_ACCESS_KEY_ID" in f and "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in f
    assert "EC2 instance metadata" in f and "network isolation" in f and "s3://bkt/k.tar.gz" in f


class ImdsServer:
    """IMDSv2 on loopback (AWS_EC2_METADATA_SERVICE_ENDPOINT): a session token first, then the role's keys."""

    def __init__(self, access, secret):
        outer = self
        self.calls = []

        class H(http.server.BaseHTTPRequestHandler):
            def reply(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                outer.calls.append("PUT " + self.path)
                ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self.reply(200 if ok else 400, b"imds-session-token" if ok else b"")

            def do_GET(self):
                outer.calls.append("GET " + self.path)
                if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                    return self.reply(401)
                if self.path == "/latest/meta-data/iam/security-credentials/":
                    return self.reply(200, b"my-role")
                if self.path == "/latest/meta-data/iam/security-credentials/my-role":
                    return self.reply(200, json.dumps({"Code": "Success", "AccessKeyId": access,
                                                       "SecretAccessKey": secret, "Token": "",
                                                       "Expiration": "2099-01-01T00:00:00Z"}).encode())
                self.reply(404)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_with_imdsv2_credentials(s3srv, mlroot, tmp_path):
    put_object(s3srv, "imds/code.tar.gz", make_code_tarball(tmp_path, CODE))
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/imds/code.tar.gz", "sagemaker_program": "run.sh"})
    imds = ImdsServer(s3srv.access_key, SECRET)
    try:
        r = run_smhost(["train"], mlroot=mlroot, env={"S3_ENDPOINT_URL": s3srv.endpoint,
                                                      "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        assert r.returncode == 0, r.stderr
        assert "code ran" in r.stdout
        assert imds.calls == ["PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                              "GET /latest/meta-data/iam/security-credentials/my-role"]
    finally:
        imds.close()


def test_credentials_near_expiry_are_fetched_again(s3srv, mlroot, tmp_path):
    """Credentials that expire within the refresh window (300 s) are fetched again before the next request;
    far-off ones are fetched once per client (the download, then the sync thread)."""
    put_object(s3srv, "ecs/code2.tar.gz", make_code_tarball(tmp_path, "#!/bin/sh\nfor i in 1 2 3; do echo $i > "
                                                            "$SM_OUTPUT_INTERMEDIATE_DIR/f$i; sleep 0.3; done\n"))
    hps = {"sagemaker_submit_directory": "s3://bkt/ecs/code2.tar.gz", "sagemaker_program": "run.sh",
           "sagemaker_s3_output": "s3://bkt/refresh"}
    counts = {}
    for name, expires_in in (("far", 3600), ("near", 120)):
        shutil.rmtree(mlroot.path / "code")
        (mlroot.path / "code").mkdir()
        shutil.rmtree(mlroot.path / "output")
        mlroot.hyperparameters(hps)
        creds = CredsServer(s3srv.access_key, SECRET, expires_in=expires_in)
        try:
            r = run_smhost(["train"], mlroot=mlroot, env=endpoint_env(
                s3srv, creds, AWS_CONTAINER_AUTHORIZATION_TOKEN=TOKEN, TRAINING_JOB_NAME="refresh-" + name))
            assert r.returncode == 0, r.stderr
            counts[name] = creds.hits
        finally:
            creds.close()
        for i in (1, 2, 3):
            assert get_object(s3srv, "refresh/refresh-%s/output/intermediate/f%d" % (name, i), tmp_path / "x") == "200"
    assert counts["far"] == 2
    assert counts["near"] >= 5  # download, sync start, one per upload at least


# ---- retries -------------------------------------------------------------------------------------------------
class FlakyProxy:
    """Forwards to Swift, but answers the first `fail` requests with 503 SlowDown."""

    def __init__(self, target_port, fail=2):
        self.fail, self.seen, self.ranges = fail, 0, []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                outer.seen += 1
                if self.headers.get("Range"):
                    outer.ranges.append(self.headers["Range"])
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if outer.seen <= outer.fail:
                    msg = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>try later</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                c = http.client.HTTPConnection("127.0.0.1", target_port)
                hdrs = {k: v for k, v in self.headers.items()}
                c.request(self.command, self.path, body=body, headers=hdrs)
                resp = c.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.endpoint = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_failing_the_first_two_requests_is_retried(s3srv, mlroot, tmp_path):
    put_object(s3srv, "flaky/code.tar.gz", make_code_tarball(tmp_path, CODE))
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/flaky/code.tar.gz", "sagemaker_program": "run.sh"})
    proxy = FlakyProxy(int(s3srv.endpoint.rsplit(":", 1)[1]), fail=2)
    try:
        r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, S3_ENDPOINT_URL=proxy.endpoint))
        assert r.returncode == 0, r.stderr
        assert "code ran" in r.stdout
        assert proxy.seen == 3
    finally:
        proxy.close()


# ---- a big object: parallel ranged GETs ----------------------------------------------------------------------------
@pytest.mark.slow
def test_big_object_downloads_in_ranges_byte_for_byte(s3srv, mlroot, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(210):
            f.write(os.urandom(1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    tgz = tmp_path / "big.tar"  # uncompressed: the object is as big as the data
    with tarfile.open(tgz, "w") as t:
        t.add(CODE_FILE(tmp_path), arcname="run.sh")
        t.add(big, arcname="big.bin")
    big.unlink()
    put_object(s3srv, "big/code.tar", tgz)
    assert tgz.stat().st_size >= 200 << 20
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/big/code.tar", "sagemaker_program": "run.sh"})
    proxy = FlakyProxy(int(s3srv.endpoint.rsplit(":", 1)[1]), fail=0)  # to see the requests
    try:
        r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, S3_ENDPOINT_URL=proxy.endpoint), timeout=300)
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr
    size = tgz.stat().st_size
    parts = (size + (16 << 20) - 1) // (16 << 20)
    assert len(proxy.ranges) == parts and "bytes=0-16777215" in proxy.ranges
    assert "bytes=%d-%d" % ((parts - 1) * (16 << 20), size - 1) in proxy.ranges
    assert "downloaded s3://bkt/big/code.tar (%d bytes)" % tgz.stat().st_size in r.stderr
    got = mlroot.path / "code" / "big.bin"
    h = hashlib.sha256()
    with open(got, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert h.hexdigest() == digest


def CODE_FILE(tmp_path):
    p = tmp_path / "run_big.sh"
    p.write_text(CODE)
    p.chmod(0o755)
    return p


# ---- intermediate output -----------------------------------------------------------------------------------------
SYNC_SCRIPT = r"""#!/bin/sh
set -e
D=$SM_OUTPUT_INTERMEDIATE_DIR
echo first > $D/early.txt
# Uploaded while the job runs: wait (up to 30 s) until S3 has it, asking with curl's own SigV4.
printf 'machine 127.0.0.1 login %s password %s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > $D/../netrc
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --netrc-file $D/../netrc \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT_URL/bkt/out/prefix/$TRAINING_JOB_NAME/output/intermediate/early.txt")" = 200 ]; do
  i=$((i+1)); [ $i -lt 300 ] || { echo "early.txt never reached S3 during the job" >&2; exit 3; }
  sleep 0.1
done
echo "early.txt was in S3 while the job ran"
mkdir -p "$D/new dir/deeper"
head -c 3000000 /dev/urandom > "$D/new dir/deeper/ckpt+1~x.bin"
head -c 20000000 /dev/urandom > $D/large.bin
echo second > $D/early.txt
echo bye > $D/last.txt
"""


def sync_root(mlroot, tmp_path, s3srv, script=SYNC_SCRIPT, url="s3://bkt/out/prefix"):
    (mlroot.path / "code" / "run.sh").write_text(script)
    (mlroot.path / "code" / "run.sh").chmod(0o755)
    mlroot.hyperparameters({"sagemaker_program": "run.sh", "sagemaker_s3_output": url})


def test_intermediate_output_is_synced_during_the_job_and_flushed(s3srv, mlroot, tmp_path):
    sync_root(mlroot, tmp_path, s3srv)
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, TRAINING_JOB_NAME="sync-job"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "early.txt was in S3 while the job ran" in r.stdout
    inter = mlroot.path / "output" / "intermediate"
    for rel, enc in (("early.txt", "early.txt"), ("last.txt", "last.txt"), ("large.bin", "large.bin"),
                     ("new dir/deeper/ckpt+1~x.bin", "new%20dir/deeper/ckpt%2B1~x.bin")):
        dest = tmp_path / "got"
        assert get_object(s3srv, "out/prefix/sync-job/output/intermediate/" + enc, dest) == "200", rel
        assert dest.read_bytes() == (inter / rel).read_bytes(), rel
    # large.bin (20 MB) went by multipart upload: S3's ETag of a multipart object ends in -<parts> (8 MiB parts)
    head = s3srv.curl("HEAD", "/bkt/out/prefix/sync-job/output/intermediate/large.bin", extra=["-I"], check=False)
    etag = [ln for ln in head.stdout.decode().splitlines() if ln.lower().startswith("etag:")]
    assert etag and etag[0].strip().rstrip('"').endswith("-3"), head.stdout
    assert (mlroot.path / "output" / "success").exists()
    assert SECRET not in r.stdout + r.stderr


def test_intermediate_upload_failures_are_logged_not_fatal(s3srv, mlroot, tmp_path):
    sync_root(mlroot, tmp_path, s3srv, script="#!/bin/sh\necho x > $SM_OUTPUT_INTERMEDIATE_DIR/a.txt\n",
              url="s3://nobucket-here/p")
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, TRAINING_JOB_NAME="j"))
    assert r.returncode == 0, r.stderr
    assert "cannot upload" in r.stderr and "a.txt" in r.stderr and "NoSuchBucket" in r.stderr
    assert (mlroot.path / "output" / "success").exists()


def test_file_url_disables_sync_and_other_schemes_fail(s3srv, mlroot, tmp_path):
    sync_root(mlroot, tmp_path, s3srv, script="#!/bin/sh\nmkdir -p $SM_OUTPUT_INTERMEDIATE_DIR\n"
              "echo x > $SM_OUTPUT_INTERMEDIATE_DIR/a.txt\n", url="file:///tmp/nowhere")
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, TRAINING_JOB_NAME="file-job"))
    assert r.returncode == 0, r.stderr
    assert "not synced" in r.stderr
    assert get_object(s3srv, "?list-type=2", tmp_path / "x") == "200"
    assert b"file-job" not in (tmp_path / "x").read_bytes()  # no key of this job in the bucket
    shutil.rmtree(mlroot.path / "output")
    sync_root(mlroot, tmp_path, s3srv, url="gs://bucket/p")
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 65
    assert "sagemaker_s3_output=gs://bucket/p" in mlroot.failure_text()


def test_existing_intermediate_dir_is_left_to_the_platform(s3srv, mlroot, tmp_path):
    (mlroot.path / "output" / "intermediate").mkdir(parents=True)
    sync_root(mlroot, tmp_path, s3srv, script="#!/bin/sh\necho x > $SM_OUTPUT_INTERMEDIATE_DIR/a.txt\n")
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, TRAINING_JOB_NAME="exists-job"))
    assert r.returncode == 0, r.stderr
    assert "the platform syncs it" in r.stderr
    assert get_object(s3srv, "out/prefix/exists-job/output/intermediate/a.txt", tmp_path / "x") == "404"


def test_smhost_env_hides_aws_secrets(mlroot):
    r = run_smhost(["env"], mlroot=mlroot, env={"AWS_SECRET_ACCESS_KEY": "sek-1a2b3c4d", "AWS_SESSION_TOKEN":
                                                "tok-5e6f7a8b", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "auth-9c0d1e2f"})
    out = r.stdout + r.stderr
    for secret in ("sek-1a2b3c4d", "tok-5e6f7a8b", "auth-9c0d1e2f"):
        assert secret not in out


def test_s3_module_is_loaded_only_for_s3_jobs(s3srv, mlroot, tmp_path):
    """The supervisor (the program's parent) maps libcurl only when an s3:// URL appears."""
    script = "#!/bin/sh\nif grep -q 'libcurl' /proc/$PPID/maps; then echo CURL-MAPPED; else echo CURL-ABSENT; fi\n"
    (mlroot.path / "code" / "run.sh").write_text(script)
    (mlroot.path / "code" / "run.sh").chmod(0o755)
    mlroot.hyperparameters({"sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 0, r.stderr
    assert "CURL-ABSENT" in r.stdout
    mlroot.hyperparameters({"sagemaker_program": "run.sh", "sagemaker_s3_output": "s3://bkt/maps"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv))
    assert r.returncode == 0, r.stderr
    assert "CURL-MAPPED" in r.stdout


def test_wrong_region_names_the_region_s3_expects(s3srv, mlroot, tmp_path):
    put_object(s3srv, "region/code.tar.gz", make_code_tarball(tmp_path, CODE))
    url = "s3://bkt/region/code.tar.gz"
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, AWS_REGION="eu-west-1"))
    assert r.returncode == 78, r.stderr
    f = mlroot.failure_text()
    assert url in f and "in region us-east-1, not eu-west-1" in f and "AWS_REGION=us-east-1" in f
    assert "AuthorizationHeaderMalformed" in f
    # the sagemaker_region hyperparameter comes first
    (mlroot.path / "output" / "failure").unlink()
    mlroot.hyperparameters({"sagemaker_submit_directory": url, "sagemaker_program": "run.sh",
                            "sagemaker_region": "us-east-1"})
    r = run_smhost(["train"], mlroot=mlroot, env=s3_env(s3srv, AWS_REGION="eu-west-1"))
    assert r.returncode == 0, r.stderr


def test_redirects_are_not_followed(mlroot):
    """A bucket in another region: S3 answers 301 with x-amz-bucket-region; smhost names it, follows nothing."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = b"<Error><Code>PermanentRedirect</Code><Message>use the right endpoint</Message></Error>"
            self.send_response(301)
            self.send_header("Location", "http://127.0.0.1:%d/elsewhere" % self.server.server_address[1])
            self.send_header("x-amz-bucket-region", "ap-south-1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/k.tar.gz", "sagemaker_program": "run.sh"})
        r = run_smhost(["train"], mlroot=mlroot, env={"S3_ENDPOINT_URL": "http://127.0.0.1:%d" % httpd.server_address[1],
                                                      "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.returncode == 78, r.stderr
    assert seen == ["/bkt/k.tar.gz"]
    f = mlroot.failure_text()
    assert "in region ap-south-1" in f and "AWS_REGION=ap-south-1" in f and "301 PermanentRedirect" in f


def test_final_flush_has_a_bound(mlroot, tmp_path):
    """An endpoint that accepts connections and never answers: the job still reports within the bound."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        (mlroot.path / "code" / "run.sh").write_text("#!/bin/sh\necho x > $SM_OUTPUT_INTERMEDIATE_DIR/a.txt\n")
        (mlroot.path / "code" / "run.sh").chmod(0o755)
        mlroot.hyperparameters({"sagemaker_program": "run.sh", "sagemaker_s3_output": "s3://bkt/p"})
        t0 = time.time()
        r = run_smhost(["train"], mlroot=mlroot, env={
            "S3_ENDPOINT_URL": "http://127.0.0.1:%d" % lsock.getsockname()[1], "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b", "TRAINING_JOB_NAME": "j", "SMHOST_S3_FLUSH_SECONDS": "2"})
        took = time.time() - t0
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        lsock.close()
    assert r.returncode == 0, r.stderr
    assert took < 10
    assert "did not finish within 2 s" in r.stderr and "1 file(s) may be missing" in r.stderr
    assert (mlroot.path / "output" / "success").exists()


def test_sigterm_during_a_stuck_download_stops_the_job(mlroot):
    """StopTrainingJob while the submit directory downloads from an endpoint that never answers: smhost stops
    within about a second (exit 143), without starting the program."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    try:
        mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/k.tar.gz", "sagemaker_program": "run.sh"})
        p = start_smhost(["train"], mlroot=mlroot, env={
            "S3_ENDPOINT_URL": "http://127.0.0.1:%d" % lsock.getsockname()[1], "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b"})
        time.sleep(1.5)
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        took = time.time() - t0
    finally:
        lsock.close()
    assert p.returncode == 143, err
    assert took < 10
    assert "stopped by SIGTERM" in mlroot.failure_text() and "s3://bkt/k.tar.gz" in mlroot.failure_text()


NETNS_SCRIPT = r'''
import http.server, json, os, subprocess, sys, tarfile, threading
sys.path.insert(0, sys.argv[1])
import swift_s3
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "169.254.170.2/32", "dev", "lo"], check=True)
work, smhost, mlroot = sys.argv[2], sys.argv[3], sys.argv[4]
srv = swift_s3.SwiftS3(os.path.join(work, "swift")).start()
try:
    srv.curl("PUT", "/bkt")
    srv.curl("PUT", "/bkt/rel/code.tar.gz", data_file=sys.argv[5])
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = json.dumps({"AccessKeyId": srv.access_key, "SecretAccessKey": srv.secret_key, "Token": "",
                               "Expiration": "2099-01-01T00:00:00Z"}).encode()
            self.send_response(200 if self.path == "/v2/credentials/task-1" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("169.254.170.2", 80), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {"PATH": os.environ["PATH"], "SAGEMAKER_BASE_DIR": mlroot, "SMHOST_CONFIG": os.environ["SMHOST_CONFIG"],
           "SMHOST_PLUGIN_PATH": "", "S3_ENDPOINT_URL": srv.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-1"}
    if "ASAN_OPTIONS" in os.environ:
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    r = subprocess.run([smhost, "train"], env=env, capture_output=True, text=True, timeout=60)
    print(json.dumps({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr, "hits": hits}))
finally:
    srv.stop()
'''


def test_relative_uri_credentials_from_169_254_170_2(mlroot, tmp_path):
    """AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, what SageMaker training jobs get, is fetched from
    http://169.254.170.2: a network namespace of the test's own has that address on its loopback, a credentials
    server on it and its own Swift."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip to create a network namespace with 169.254.170.2")
    tgz = make_code_tarball(tmp_path, CODE)
    mlroot.hyperparameters({"sagemaker_submit_directory": "s3://bkt/rel/code.tar.gz", "sagemaker_program": "run.sh"})
    from conftest import SMHOST, merged_env
    r = subprocess.run(["unshare", "-n", "/usr/bin/python3", "-c", NETNS_SCRIPT, str(REPO / "tests" / "s3"),
                        str(tmp_path), str(SMHOST), str(mlroot.path), str(tgz)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SMHOST_CONFIG=merged_env()["SMHOST_CONFIG"]))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0, res["stderr"]
    assert "code ran" in res["stdout"]
    assert res["hits"] == ["/v2/credentials/task-1"]
