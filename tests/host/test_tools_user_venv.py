"""The user tools with nothing but requirements-user.txt: a fresh venv (no pytest, no Unix port,
no linters) runs nodectl config-check, build, deploy (to the Unix port on a pty, standing in for
a board), monitor and broker. About 13 s here (pip fills the venv from its cache in 4 s), so it
is part of `make test`; `make check-user-tools` runs only this file."""

import json
import os
import subprocess
import sys
import time

import pytest
from ptydevice import PtyDevice
from test_tools_monitor import publish_node
from tools_util import REPO, Project


@pytest.fixture(scope="module")
def user_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp("user-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    t0 = time.monotonic()
    subprocess.run(
        [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r",
         str(REPO / "requirements-user.txt")],
        check=True,
        timeout=600,
    )  # fmt: skip
    print(f"user venv installed in {time.monotonic() - t0:.0f} s")
    # Only the user set: nothing of the developer set leaked in.
    for mod in ("pytest", "ruff", "basedpyright"):
        r = subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True, timeout=60)
        assert r.returncode != 0, f"{mod} is installed in the user venv"
    assert not (py.parent / "micropython").exists()
    return py


def nodectl(py, *args, timeout=180):
    return subprocess.run(
        [str(py), str(REPO / "tools" / "nodectl"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def test_config_check_build_and_deploy(user_python, tmp_path):
    p = Project(tmp_path / "p")
    r = nodectl(user_python, "config-check", p.config, p.secrets)
    assert r.returncode == 0 and r.stdout.strip() == f"{p.config}: OK", r.stdout + r.stderr
    p.set_config(None)
    r = nodectl(user_python, "config-check", p.config)
    assert r.returncode == 1 and "expected a JSON object" in r.stderr
    p.set_config(json.loads((REPO / "firmware" / "config.example.json").read_text()))
    out = tmp_path / "out"
    r = nodectl(user_python, "build", "--out", out, "--version", "u-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "lib" / "node" / "config.mpy").is_file()
    with PtyDevice(tmp_path / "device") as dev:
        r = nodectl(
            user_python, "deploy", "--port", dev.port, "--config", p.config,
            "--secrets", p.secrets, *p.build_args(), "--resume", "--no-restart",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / "device" / "lib" / "blink.mpy").is_file()
        assert (tmp_path / "device" / "config.json").read_bytes() == p.config.read_bytes()


def test_monitor_and_broker(user_python, broker, tmp_path):
    base = "user-venv/node"
    publish_node(broker.port, base)
    r = nodectl(
        user_python, "monitor", "--host", "127.0.0.1", "--port", broker.port, "--base", base,
        "--once",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"node {base}: ONLINE"
    r = nodectl(user_python, "broker", "--node", "kitchen-1:home/kitchen", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "user kitchen-1\ntopic readwrite home/kitchen/#"
        in (tmp_path / "b" / "nodes.acl").read_text()
    )
