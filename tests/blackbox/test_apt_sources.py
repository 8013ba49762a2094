"""tests/image/apt_sources.sh: the image test takes its Debian mirror from the machine's apt sources, in both
formats, and from nowhere else."""
import subprocess
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.nosan  # shell only: nothing of the build runs

LIB = REPO / "tests" / "image" / "apt_sources.sh"


def uri(etc, *suites):
    """apt_source_uri against a fake /etc/apt; returns (exit code, stdout)."""
    r = subprocess.run(["bash", "-c", f'. "{LIB}"; apt_source_uri "$@"', "x", *suites],
                       env={"PATH": "/usr/bin:/bin", "APT_ETC": str(etc)}, capture_output=True, text=True)
    assert r.stderr == "", r.stderr
    return r.returncode, r.stdout.strip()


def apt_etc(tmp_path, files):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(textwrap.dedent(text))
    return etc


def test_deb822(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list.d/debian.sources": """\
        Types: deb
        # http://snapshot.debian.org/archive/debian/20250520T000000Z
        URIs: http://mirror.internal:3142/debian
        Suites: bookworm bookworm-updates
        Components: main
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

        Types: deb
        URIs: http://mirror.internal:3142/debian-security
        Suites: bookworm-security
        Components: main
        """})
    assert uri(etc, "bookworm") == (0, "http://mirror.internal:3142/debian")
    assert uri(etc, "bookworm-security") == (0, "http://mirror.internal:3142/debian-security")
    assert uri(etc, "bookworm-updates") == (0, "http://mirror.internal:3142/debian")


def test_deb822_skips_disabled_source_only_and_reads_continuation_lines(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list.d/a.sources": """\
        Types: deb
        URIs: http://off.internal/debian
        Suites: bookworm
        Enabled: no

        Types: deb-src
        URIs: http://src.internal/debian
        Suites: bookworm

        types: deb-src deb
        uris:
         https://on.internal/debian
         https://second.internal/debian
        suites: trixie
         bookworm
        """})
    assert uri(etc, "bookworm") == (0, "https://on.internal/debian")
    assert uri(etc, "trixie") == (0, "https://on.internal/debian")


def test_one_line_format_with_options_and_comments(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list": """\
        # deb http://commented.internal/debian bookworm main
        deb-src http://src.internal/debian bookworm main
        deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://one.internal/debian bookworm main # trailing
        deb [arch=amd64] http://one.internal/security bookworm-security main
        deb cdrom:[Debian 12]/ bookworm main
        """})
    assert uri(etc, "bookworm") == (0, "http://one.internal/debian")
    assert uri(etc, "bookworm-security") == (0, "http://one.internal/security")


def test_apt_order_and_suite_preference(tmp_path):
    # sources.list before sources.list.d, whose files count in name order; the first suite asked for that any
    # source lists wins over a later one listed earlier
    etc = apt_etc(tmp_path, {
        "sources.list": "deb http://first.internal/debian trixie main\n",
        "sources.list.d/b.list": "deb http://b.internal/debian bookworm main\n",
        "sources.list.d/a.sources": "Types: deb\nURIs: http://a.internal/debian\nSuites: bookworm\n",
        "sources.list.d/c.list.disabled": "deb http://disabled.internal/debian bookworm main\n",
    })
    assert uri(etc, "bookworm") == (0, "http://a.internal/debian")
    assert uri(etc, "bookworm", "trixie") == (0, "http://a.internal/debian")
    assert uri(etc, "sid", "trixie") == (0, "http://first.internal/debian")


def test_no_source_is_an_error_not_a_default(tmp_path):
    etc = apt_etc(tmp_path, {"sources.list": "deb http://archive.ubuntu.internal/ubuntu jammy main\n"})
    assert uri(etc, "bookworm", "trixie") == (1, "")
    empty = apt_etc(tmp_path / "empty", {})
    assert uri(empty, "bookworm") == (1, "")


def test_the_image_test_names_no_mirror_host():
    text = (REPO / "tests" / "image" / "test_image.sh").read_text()
    assert "apt_source_uri" in text and "SMHOST_DEBIAN_MIRROR" in text
    assert "debian.org" not in text, "the image test must take its mirror from apt's sources only"
