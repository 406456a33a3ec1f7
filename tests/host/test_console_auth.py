"""The console against a real mosquitto with a password listener: the firmware on the simulated
board says in one line what is wrong and where (a wrong password), and that it connected (the
right one). The password itself never appears on the console.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sim_run", REPO / "tools" / "sim" / "run.py")
RUN = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RUN)

WIFI = {"ssid": "simnet", "password": "simnet-password", "connect_ms": 300}
BASE = "Console/Auth"

pytestmark = pytest.mark.timeout(90)


def boot(tmp: Path, port: int, user: str, password: str) -> tuple[subprocess.Popen, Path]:
    """The firmware on the simulated board, its console written to a file."""
    dev, state = tmp / "device", tmp / "state"
    state.mkdir(parents=True)
    cfg = {
        "version": 1,
        "board": "sim",
        "topic": BASE,
        "interval": 5,
        "wifi": [{"ssid": WIFI["ssid"], "password": WIFI["password"]}],
        "mqtt": {"host": "127.0.0.1", "port": port, "user": user, "password": password},
        "sensors": [],
        "discovery": False,
        "time": {"ntp": None},
    }
    RUN.write_device(dev, "sim", cfg, None, None, None)
    scen = tmp / "scenario.json"
    scen.write_text(json.dumps({"speed": 1, "devices": [], "wifi": WIFI, "ntp": {"fail": []}}))
    env = RUN.node_env(dev, state, scen, "sim", None)
    out = tmp / "console.txt"
    with open(out, "wb") as f:
        p = subprocess.Popen(
            [RUN.find_micropython(), "main.py"],
            cwd=dev, env=env, stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return p, out


def wait_for(out: Path, text: str, timeout: float = 30) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = out.read_text(errors="replace")
        if text in s:
            return s
        time.sleep(0.1)
    return out.read_text(errors="replace")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_wrong_password_says_not_authorised_and_where(broker, tmp_path):
    p, out = boot(tmp_path, broker.auth_port, broker.info()["user"], "wrong-horse-battery")
    try:
        where = "mqtt: 127.0.0.1:%d " % broker.auth_port
        s = wait_for(out, "not authorised")
        lines = [x for x in s.splitlines() if where in x]
        assert any("CONNACK 5 (not authorised)" in x for x in lines), s
        time.sleep(3)  # retries with backoff: still one line, not one per attempt
        s = out.read_text(errors="replace")
        assert len([x for x in s.splitlines() if "not authorised" in x]) == 1, s
        assert "wrong-horse-battery" not in s
    finally:
        stop(p)


def test_right_password_connects(broker, tmp_path):
    user, password = broker.info()["user"], broker.info()["password"]
    p, out = boot(tmp_path, broker.auth_port, user, password)
    try:
        want = "mqtt: connected to 127.0.0.1:%d" % broker.auth_port
        s = wait_for(out, want)
        assert want in s and "not authorised" not in s, s
        assert password not in s
    finally:
        stop(p)
