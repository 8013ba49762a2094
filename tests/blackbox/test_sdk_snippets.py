"""The C in the documentation is real: every ```c block of README.md, sdk/README.md and docs/*.md compiles on its
own with -Werror, the walk-through plugins are accepted by `smhost plugins`, and the handler walk-through serves
the answers sdk/README.md promises."""
import http.client
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO, run_smhost, start_smhost

GCC = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'sdk' / 'include'}", "-fPIC", "-shared"]
# The walk-throughs are complete plugins: nothing may be left undefined.  docs/ may show a function that calls
# the reader's own code (declared in the snippet), so those only have to compile.
COMPLETE = ("README.md", "sdk/README.md")


def snippets():
    """(file, line, source) for every ```c block."""
    out = []
    for md in [REPO / "README.md", REPO / "sdk" / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = md.read_text()
        for m in re.finditer(r"^```c\n(.*?)^```\s*$", text, re.S | re.M):
            out.append((str(md.relative_to(REPO)), text.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


SNIPPETS = snippets()


def build(tmp_path, rel, line, src):
    c = tmp_path / f"snippet_{line}.c"
    c.write_text(src)
    so = tmp_path / f"snippet_{line}.so"
    args = GCC + (["-Wl,--no-undefined"] if rel in COMPLETE else []) + ["-o", str(so), str(c)]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, f"the ```c block at {rel}:{line} does not compile:\n{r.stderr}"
    return so


def plugin_name(src):
    m = re.search(r'SMH_PLUGIN_DEFINE\(\s*\.name\s*=\s*"([^"]+)"', src)
    return m.group(1) if m else None


@pytest.mark.nosan  # reads documentation only: nothing of the build runs
def test_the_walk_throughs_are_found():
    names = {plugin_name(src) for rel, _, src in SNIPPETS if rel == "sdk/README.md"}
    assert {"myrunner", "linear"} <= names, f"sdk/README.md's walk-throughs were not extracted: {names}"
    assert any(rel == "docs/native.md" for rel, _, _ in SNIPPETS)


@pytest.mark.nosan  # compiles documentation only: nothing of the build runs
@pytest.mark.parametrize("rel,line,src", SNIPPETS, ids=[f"{r}:{n}" for r, n, _ in SNIPPETS])
def test_snippet_compiles(tmp_path, rel, line, src):
    build(tmp_path, rel, line, src)


@pytest.mark.parametrize("rel,line,src", [s for s in SNIPPETS if plugin_name(s[2])],
                         ids=[f"{r}:{n}" for r, n, s in SNIPPETS if plugin_name(s)])
def test_snippet_plugin_is_accepted(tmp_path, rel, line, src):
    name = plugin_name(src)
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    build(tmp_path, rel, line, src).rename(plugdir / f"{name}.so")
    r = run_smhost(["plugins"], env={"SMHOST_PLUGIN_PATH": str(plugdir)})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # one entry per plugin: a line "<name> <version> ABI <x.y> <kind> <path>", then indented lines
    entries = re.split(r"\n(?=\S)", out)
    mine = [e for e in entries if e.split(None, 1)[:1] == [name] and str(plugdir) in e]
    assert len(mine) == 1, f"`smhost plugins` does not list {name} from {plugdir}:\n{out}"
    header = (REPO / "sdk" / "include" / "smhost" / "plugin.h").read_text()
    abi = ".".join(re.search(rf"#define SMH_ABI_{part} (\d+)", header).group(1) for part in ("MAJOR", "MINOR"))
    assert f"ABI {abi} " in mine[0] and "refused" not in mine[0], mine[0]  # built against this tree's header


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body, content_type="text/csv"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def wait_ready(proc, port):
    end = time.time() + 30
    while time.time() < end:
        assert proc.poll() is None, f"smhost serve exited {proc.returncode}: {proc.communicate()[1]}"
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/ping")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the handler walk-through never became ready")


@pytest.mark.parametrize("preload", ["true", "false"])
def test_handler_walk_through_serves_what_the_readme_says(tmp_path, mlroot, preload):
    (rel, line, src), = [s for s in SNIPPETS if plugin_name(s[2]) == "linear"]
    code = mlroot.path / "model" / "code"
    code.mkdir(parents=True, exist_ok=True)
    build(tmp_path, rel, line, src).rename(code / "linear.so")
    (mlroot.path / "model" / "weights.txt").write_text("0.5 1 2\n")  # as in sdk/README.md
    port = free_port()
    p = start_smhost(["serve"], mlroot, env={"SAGEMAKER_PROGRAM": "linear.so", "SAGEMAKER_BIND_TO_PORT": str(port),
                                             "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SMHOST_SERVE_PRELOAD": preload})
    try:
        wait_ready(p, port)
        assert post(port, b"1,1\n2,0\n") == (200, "3.5\n2.5\n")
        status, body = post(port, b"1\n")
        assert status == 400 and "too few numbers" in body
        status, body = post(port, b"[1, 2]", "application/json")
        assert status == 415 and "send text/csv" in body
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
