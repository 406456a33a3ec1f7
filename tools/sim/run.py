#!/usr/bin/env python3
"""`make sim`: run the real firmware on the simulated board and show what a user would watch.

Starts mosquitto on a free loopback port (unless --broker/BROKER=host:port names one), writes a
device filesystem (.sim/device: boot.py, main.py, lib/, board.json, config.json, secrets.json),
runs `micropython main.py` in it on the Unix port with the simulated board first on MICROPYPATH,
boots it again whenever it deep-sleeps, resets or is reset by its watchdog (as a real board
would), and prints every message under the node's base topic as it arrives. Ctrl-C stops
the node, the observer and the broker.

    python tools/sim/run.py                                  # default scenario, local broker
    python tools/sim/run.py --broker 127.0.0.1:1883 --scenario tools/sim/scenarios/faults.json
    python tools/sim/run.py --config my-config.json --speed 60 --duration 30

Environment (flags win): BROKER=host:port, SCENARIO=path, SIM_SPEED=n.
Exit status: 0 after Ctrl-C or --duration, 2 on bad arguments, 1 if the node could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIM_BOARD = REPO / "tools" / "sim" / "board"
EXIT_DEEPSLEEP, EXIT_RESET, EXIT_WDT = 75, 76, 77
DEFAULT_BASE = "Erdgeschoss/Wohnzimmer"

sys.path[:0] = [str(REPO / "tools"), str(REPO / "lib")]
from nodectl.common import (  # noqa: E402
    Refused,
    ToolFailed,
    parse_broker,
    probe_broker,
)
from nodectl.common import find_micropython as _find_micropython  # noqa: E402

# Which quantities each sensor type reports and their default subtopics: the validator's
# tables (lib/node/config.py runs unchanged in CPython), so a made-up config cannot disagree.
from node.config import SUBTOPIC, TYPES  # noqa: E402


def find_micropython() -> str:
    try:
        return _find_micropython()
    except ToolFailed as e:
        raise SystemExit(f"run.py: {e}") from None


def sensors_from_scenario(scenario: dict) -> list[dict]:
    """A sensors list for config.json matching the devices a scenario puts on the board."""
    out: list[dict] = []
    names: set[str] = set()
    used: set[str] = set()
    for d in scenario.get("devices", []):
        t = d.get("type")
        s: dict = {"type": t}
        if t in ("bme280", "bmp280", "sht3x", "sht4x", "aht20", "bh1750"):
            if "address" in d:
                s["address"] = "0x%02x" % int(d["address"])
        elif t == "ds18b20":
            s["pin"] = d.get("pin", 4)
            if d.get("rom"):
                s["rom"] = d["rom"]
        elif t in ("dht22", "adc", "digital", "pulse"):
            s["pin"] = d.get("pin")
            if t == "adc" and d.get("divider"):
                s["params"] = {"divider": d["divider"]}
        else:
            continue
        name = t
        i = 2
        while name in names:
            name = "%s-%d" % (t, i)
            i += 1
        names.add(name)
        if name != t:
            s["name"] = name
        topics: dict = {}
        if t == "ds18b20":
            s["name"] = "outside" if "outside" not in names else name
            topics["temperature"] = "Aussen" if s["name"] == "outside" else s["name"]
            names.add(s["name"])
        # Two sensors may not publish to one topic (a BME280 and an SHT3x both measure Temp
        # and Hum): the first keeps the default subtopic, later ones get theirs suffixed.
        for q in TYPES[t][1]:
            topic = topics.get(q) or SUBTOPIC.get(q, q)
            if topic in used:
                topic = "%s-%s" % (topic, s.get("name", t))
            used.add(topic)
            if topic != SUBTOPIC.get(q, q):
                topics[q] = topic
        if topics:
            s["quantities"] = {q: {"topic": v} for q, v in topics.items()}
        out.append(s)
    return out


def default_config(
    base: str, host: str, port: int, scenario: dict, interval: int
) -> tuple[dict, dict]:
    """(config.json, secrets.json) for the sim board."""
    wifi = scenario.get("wifi", {})
    cfg = {
        "version": 1,
        "board": "sim",
        "topic": base,
        "interval": interval,
        "json": True,
        "mqtt": {"host": host, "port": port},
        "sensors": sensors_from_scenario(scenario),
        "discovery": {"enabled": True},
        "diag": {"interval": 60},
        "safe_mode": {"good_after": 30},
    }
    secrets = {
        "wifi": [
            {
                "ssid": wifi.get("ssid", "simnet"),
                "password": wifi.get("password", "simnet-password"),
            }
        ]
    }
    return cfg, secrets


def write_device(
    dev: Path,
    board: str,
    cfg: dict,
    secrets: dict | None,
    config_file: Path | None,
    secrets_file: Path | None,
) -> None:
    """A fresh device filesystem: what `deploy` would put on a real board."""
    if dev.exists():
        shutil.rmtree(dev)
    dev.mkdir(parents=True)
    for name in ("boot.py", "main.py"):
        shutil.copy(REPO / "firmware" / name, dev / name)
    shutil.copytree(
        REPO / "lib", dev / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    bj = REPO / "boards" / (board + ".json")
    if bj.exists():
        shutil.copy(bj, dev / "board.json")
    if config_file is not None:
        shutil.copy(config_file, dev / "config.json")
    else:
        (dev / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if secrets_file is not None:
        shutil.copy(secrets_file, dev / "secrets.json")
    elif secrets is not None and config_file is None:
        (dev / "secrets.json").write_text(json.dumps(secrets, indent=2) + "\n")


def node_env(dev: Path, state: Path, scenario: Path | None, board: str, speed: str | None) -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([str(SIM_BOARD), str(dev / "lib"), str(dev)])
    env["SIM_STATE_DIR"] = str(state)
    env["SIM_BOARD"] = board
    if scenario is not None:
        env["SIM_SCENARIO"] = str(scenario)
    else:
        env.pop("SIM_SCENARIO", None)
    if speed is not None:
        env["SIM_SPEED"] = str(speed)
    return env


class Observer:
    """A paho subscriber printing what arrives under the watched filters."""

    def __init__(self, host: str, port: int, filters: list[str], out, full: bool = False):
        import paho.mqtt.client as mqtt

        self.out = out
        self.full = full
        self.count = 0
        self.messages: list[tuple[float, str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="sim-observer-%d" % os.getpid()
        )
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, 1) for t in filters]
        self.c.on_message = self._on_message
        self.c.connect(host, port, 30)
        self.c.loop_start()

    def _on_message(self, c, u, m):
        with self._lock:
            self.count += 1
            self.messages.append((time.time(), m.topic, m.payload, bool(m.retain)))
        try:
            text = m.payload.decode()
        except UnicodeDecodeError:
            text = repr(m.payload)
        if m.topic.startswith("homeassistant/") and not self.full:
            try:
                d = json.loads(text)
                text = "(discovery: %s, %s %s)" % (
                    d.get("unique_id"),
                    d.get("device_class", "-"),
                    d.get("unit_of_measurement", ""),
                )
            except ValueError:
                pass
        elif len(text) > 160 and not self.full:
            text = text[:157] + "..."
        flag = "  (retained)" if m.retain else ""
        self.out.write("%s  %-40s %s%s\n" % (time.strftime("%H:%M:%S"), m.topic, text, flag))
        self.out.flush()

    def stop(self):
        try:
            self.c.loop_stop()
            self.c.disconnect()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass


def scenario_file(arg: str | None, cwd: Path | None = None) -> Path:
    """The scenario as the caller named it, relative to the caller's working directory (the
    node itself runs in the device folder, where a relative path would find nothing)."""
    if not arg:
        return REPO / "tools" / "sim" / "scenarios" / "default.json"
    p = Path(arg).expanduser()
    return p if p.is_absolute() else (cwd or Path.cwd()) / p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/sim/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--broker",
        default=os.environ.get("BROKER") or None,
        help="use this broker (host:port) instead of starting mosquitto",
    )
    ap.add_argument(
        "--scenario",
        default=os.environ.get("SCENARIO") or None,
        help="scenario JSON (default tools/sim/scenarios/default.json)",
    )
    ap.add_argument(
        "--config", type=Path, help="config.json to run (default: one made for the scenario)"
    )
    ap.add_argument("--secrets", type=Path, help="secrets.json to put next to --config")
    ap.add_argument("--board", default="sim", help="board definition name in boards/ (default sim)")
    ap.add_argument("--base", default=DEFAULT_BASE, help="base topic of the made-up config")
    ap.add_argument(
        "--interval", type=int, default=10, help="read interval (s) of the made-up config"
    )
    ap.add_argument(
        "--speed",
        default=os.environ.get("SIM_SPEED") or None,
        help="simulated seconds per real second (default: the scenario's)",
    )
    ap.add_argument(
        "--dir", type=Path, default=REPO / ".sim", help="work directory (default .sim/)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the device filesystem and state of a previous run"
    )
    ap.add_argument("--duration", type=float, help="stop after this many real seconds")
    ap.add_argument("--max-boots", type=int, default=1000, help="stop after this many boots")
    ap.add_argument(
        "--watch",
        action="append",
        help="extra topic filters to print (default: base/# and homeassistant/#)",
    )
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="also show the node's console output"
    )
    ap.add_argument("--full", action="store_true", help="print long payloads in full")
    args = ap.parse_args(argv)
    try:
        if args.broker is not None:
            args.broker = parse_broker(args.broker)
            probe_broker(*args.broker)
    except (Refused, ToolFailed) as e:
        print("run.py: %s" % e, file=sys.stderr)
        return 2 if isinstance(e, Refused) else 1
    scenario_path = scenario_file(args.scenario).resolve()
    if not scenario_path.is_file():
        print("run.py: no scenario %s" % scenario_path, file=sys.stderr)
        return 2
    try:
        scenario = json.loads(scenario_path.read_text())
    except ValueError as e:
        print("run.py: %s: not valid JSON: %s" % (scenario_path, e), file=sys.stderr)
        return 2
    for flag, path in (("--config", args.config), ("--secrets", args.secrets)):
        if path is not None and not path.is_file():
            print("run.py: %s %s: no such file" % (flag, path), file=sys.stderr)
            return 2
    work: Path = args.dir
    work.mkdir(parents=True, exist_ok=True)
    dev, state = work / "device", work / "state"
    out = sys.stdout
    broker = None
    certs_dir = None
    observer = None
    proc: list[subprocess.Popen | None] = [None]
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()
        p = proc[0]
        if p is not None and p.poll() is None:
            try:
                p.send_signal(signal.SIGINT)
            except OSError:
                pass

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        if args.broker:
            host, port = args.broker
        else:
            sys.path.insert(0, str(REPO))
            from tests.fixtures.broker import Broker, make_certs

            # The broker's TLS keys live only as long as this run.
            certs_dir = tempfile.TemporaryDirectory(prefix="sim-certs-")
            certs = make_certs(Path(certs_dir.name))
            broker = Broker(work / "broker", certs)
            broker.start()
            host, port = "127.0.0.1", broker.port
        print(
            "[sim] broker %s:%d%s"
            % (host, port, "" if args.broker else " (mosquitto started for this run)"),
            file=out,
        )

        cfg, secrets = default_config(args.base, host, port, scenario, args.interval)
        base = args.base
        if args.config is not None:
            try:
                base = json.loads(args.config.read_text()).get("topic", base)
            except (OSError, ValueError) as e:
                print("run.py: cannot read %s: %s" % (args.config, e), file=sys.stderr)
                return 2
        if not (args.keep and dev.exists()):
            write_device(dev, args.board, cfg, secrets, args.config, args.secrets)
            if state.exists():
                shutil.rmtree(state)
        state.mkdir(parents=True, exist_ok=True)
        print("[sim] device %s, scenario %s, board %s" % (dev, scenario_path, args.board), file=out)
        filters = [base + "/#", "homeassistant/#"] + (args.watch or [])
        observer = Observer(host, port, filters, out, args.full)
        print("[sim] watching %s  (Ctrl-C stops)" % ", ".join(filters), file=out)
        out.flush()

        env = node_env(dev, state, scenario_path, args.board, args.speed)
        mp = find_micropython()
        log = open(work / "node.log", "a")  # noqa: SIM115 - spans the boot loop, closed below
        t_end = time.monotonic() + args.duration if args.duration else None
        boots = 0
        while not stopping.is_set() and boots < args.max_boots:
            boots += 1
            p = subprocess.Popen(
                [mp, "main.py"],
                cwd=dev,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                # its own session: a terminal's Ctrl-C reaches only us, and we pass one on
                start_new_session=True,
            )
            proc[0] = p
            reader = threading.Thread(
                target=_pump, args=(p, log, out if args.verbose else None), daemon=True
            )
            reader.start()
            while p.poll() is None:
                if t_end is not None and time.monotonic() >= t_end:
                    stopping.set()
                    p.send_signal(signal.SIGINT)
                if stopping.wait(0.1):
                    break
            try:
                rc = p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            reader.join(timeout=2)
            if stopping.is_set():
                break
            if rc == EXIT_DEEPSLEEP:
                b = _boot_record(state)
                print(
                    "[sim] node deep-sleeps %.1f s (simulated); waking it"
                    % ((b.get("sleep_ms") or 0) / 1000),
                    file=out,
                )
            elif rc == EXIT_RESET:
                print("[sim] node reset itself; booting again", file=out)
            elif rc == EXIT_WDT:
                print("[sim] watchdog reset; booting again", file=out)
            else:
                print(
                    "[sim] node exited with status %s (see %s); power-cycling in 2 s"
                    % (rc, work / "node.log"),
                    file=out,
                )
                if stopping.wait(2):
                    break
            out.flush()
        log.close()
        return 0
    finally:
        p = proc[0]
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
        if observer is not None:
            time.sleep(0.2)
            observer.stop()
        if broker is not None:
            broker.stop()
        if certs_dir is not None:
            certs_dir.cleanup()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        print("[sim] stopped", file=out)
        out.flush()


def _boot_record(state: Path) -> dict:
    try:
        return json.loads((state / "boot.json").read_text())
    except (OSError, ValueError):
        return {}


def _pump(p: subprocess.Popen, log, echo) -> None:
    assert p.stdout is not None
    for line in p.stdout:
        log.write(line)
        log.flush()
        if echo is not None:
            echo.write("  node| " + line)
            echo.flush()


if __name__ == "__main__":
    sys.exit(main())
