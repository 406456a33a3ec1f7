"""`make sim` (tools/sim/run.py) as a user runs it: scenarios named relative to where make runs,
made-up configs the validator accepts, one-line errors for brokers it cannot use, nothing left
behind in the temporary folder."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from tools_util import REPO, run_nodectl

_spec = importlib.util.spec_from_file_location("sim_run_t", REPO / "tools" / "sim" / "run.py")
RUN = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(RUN)

SCENARIOS = sorted((REPO / "tools" / "sim" / "scenarios").glob("*.json"))


def sim(*args, cwd=REPO, env=None, timeout=90):
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "sim" / "run.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_the_made_up_config_for_each_shipped_scenario_passes_the_validator(scenario, tmp_path):
    cfg, secrets = RUN.default_config(
        "Erdgeschoss/Wohnzimmer", "127.0.0.1", 1883, json.loads(scenario.read_text()), 10
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    r = run_nodectl("config-check", tmp_path / "config.json", tmp_path / "secrets.json")
    assert r.returncode == 0, r.stdout + r.stderr
    topics = [q.get("topic") for s in cfg["sensors"] for q in s.get("quantities", {}).values()]
    assert len(topics) == len(set(topics))


def test_a_relative_scenario_is_read_from_the_callers_folder(tmp_path):
    assert RUN.scenario_file("tools/sim/scenarios/faults.json", REPO) == (
        REPO / "tools" / "sim" / "scenarios" / "faults.json"
    )
    assert RUN.scenario_file(str(tmp_path / "s.json"), REPO) == tmp_path / "s.json"
    r = sim("--scenario", "nope.json", "--duration", "1", cwd=tmp_path)
    assert r.returncode == 2 and f"no scenario {tmp_path / 'nope.json'}" in r.stderr


@pytest.mark.parametrize(
    "broker, says, code",
    [
        ("127.0.0.1:1", "cannot connect to the broker at 127.0.0.1:1: connection refused", 1),
        ("no-such-host.invalid:1883", "no-such-host.invalid:1883: unknown host", 1),
        ("mqtt://127.0.0.1:1883", "not a URL", 2),
        ("127.0.0.1:abc", "expected HOST or HOST:PORT", 2),
    ],
)
def test_a_broker_it_cannot_use_is_one_line(broker, says, code, tmp_path):
    r = sim("--broker", broker, "--dir", tmp_path / "sim", "--duration", "5")
    assert r.returncode == code, r.stdout + r.stderr
    assert says in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_faults_scenario_from_the_repo_root_shows_readings_not_restarts(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    r = sim(
        "--scenario",
        "tools/sim/scenarios/faults.json",  # as `make sim SCENARIO=...` passes it
        "--dir",
        tmp_path / "sim",
        "--duration",
        "15",
        "--speed",
        "10",
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "power-cycling" not in r.stdout, r.stdout[-2000:]
    for topic in ("Temp", "Temp-sht3x", "Aussen"):
        assert any(f"Erdgeschoss/Wohnzimmer/{topic} " in x for x in lines), topic
    # The BME280's NACK burst (60..90 s simulated) shows as the sensor going offline.
    assert any("Erdgeschoss/Wohnzimmer/status/bme280" in x and "offline" in x for x in lines)
    # The run's broker certificates (private keys) went with it.
    assert list((tmp_path / "tmp").iterdir()) == []
