"""nodectl battery: how long a battery node lasts, from a current model and its config.

The one home of the battery model: `make bench` (bench/bench_node.py) feeds it the awake times
it measured on the simulated board, `nodectl battery config.json` feeds it an estimate for a
user's config. The model, in our words (figures per chip from Espressif's datasheets, named in
docs/battery.md):

- CPU on, radio off: the chip's modem-sleep current with the CPU running at MicroPython's
  default clock (the sensors are read, the store is written);
- radio on: the receive current plus a 10 % share of transmit on top. A short wake mostly
  listens (association, DHCP, waiting for CONNACK and PUBACKs) and sends a few hundred bytes;
  the datasheets' TX figures are for continuous transmission. This share is our assumption;
- deep sleep: RTC timer and RTC memory on, nothing else (a bare module; a dev board's
  regulator, USB-serial chip and LED come on top: `--board-ua`).

One wake costs cpu_ma * (awake - radio) + radio_ma * radio  [mA*s]; one cycle adds the sleep
current over the rest of the interval; a battery's usable share (BATTERIES) divided by the
cycle's charge gives the cycles, hence the days (self-discharge and cold not counted).

    python tools/nodectl battery config.json [secrets.json] [--board esp32-devkitc] [--board-ua 0]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from nodectl.common import EXIT_OK, REPO, Refused, ToolFailed, load_json

# chip -> (cpu_ma, rx_ma, tx_ma, sleep_ua, datasheet). Typical figures at 3.3 V, 25 degC.
CHIPS = {
    # ESP32 Series Datasheet (v5.2 checked), "Power Consumption by Power Modes": modem-sleep
    # at 160 MHz, dual core, 27..44 mA, the upper end taken; deep sleep, RTC timer + RTC
    # memory 10 uA. Its RF table: RX 95..100 mA, TX 802.11b 1 Mbps at 19.5 dBm 240 mA (these
    # two checked only against a board maker's copy of that table; see docs/battery.md).
    "esp32": (44.0, 100.0, 240.0, 10.0, "ESP32 Series Datasheet"),
    # ESP32-C3 Series Datasheet v2.2, table 5-7 (Wi-Fi current, peak): RX 802.11b/g/n HT20
    # 84 mA (87 is HT40, which a 2.4 GHz home network rarely uses), TX 802.11b 1 Mbps at
    # 21 dBm 335 mA. Modem-sleep at 160 MHz, CPU running, all peripheral clocks on, 28 mA;
    # deep sleep, RTC timer + RTC memory, 5 uA: the series datasheet's figures as the
    # ESP32-C3-MINI-1 Datasheet v2.2 repeats them (tables 6-6, 6-7).
    "esp32c3": (28.0, 84.0, 335.0, 5.0, "ESP32-C3 Series Datasheet v2.2"),
    # ESP32-S3 Series Datasheet v2.2: table 5-7 (Wi-Fi current, peak) RX HT20 88 mA, TX
    # 802.11b 1 Mbps at 21 dBm 340 mA; table 5-9, modem-sleep at 160 MHz, one core running
    # 32-bit data accesses, the other idle, all peripheral clocks on, 54.6 mA; table 5-10,
    # deep sleep with RTC memory and RTC peripherals powered, 8 uA.
    "esp32s3": (54.6, 88.0, 340.0, 8.0, "ESP32-S3 Series Datasheet v2.2"),
}
TX_SHARE = 0.10  # share of radio-on time spent transmitting (our assumption, see above)
# (name, rated mAh, usable share). The share is what reaches the chip at 3.3 V:
# - 2xAA alkaline in series through a boost converter: the cells sag to about 2.4 V under the
#   radio's load and the converter is about 85 % efficient, so the cells deliver
#   3.3 / (2.4 * 0.85) = 1.6 times the chip's current; about 90 % of the charge is above
#   1.0 V per cell: 0.9 / 1.6 = 0.55;
# - one 18650 Li-ion cell through a low-dropout regulator (cell current = chip current): the
#   regulator drops out near 3.4 V, leaving about 80 % of the charge.
BATTERIES = (("2xAA", 2500, 0.55), ("18650", 2500, 0.80))

# Estimates for a config (nodectl battery), not measurements: `make bench` measures.
WIFI_S = 1.5  # WiFi association and DHCP on a typical home network
ROUND_TRIP_S = 0.15  # CONNECT, the publishes and their acknowledgements on a LAN
REC_BYTES = 90  # one stored reading on flash: CRC, time, sensor name, a few values
# The slowest conversion per sensor type at the drivers' defaults (the drivers' own
# conversion_ms decides on the device): DS18B20 12-bit 750 ms, BH1750 high resolution 180 ms,
# AHT20 80 ms, BME280 oversampling x1 10 ms, SHT3x/SHT4x 15 ms, DHT22 read 5 ms.
CONVERSION_S = {
    "ds18b20": 0.75,
    "bh1750": 0.18,
    "aht20": 0.08,
    "sht3x": 0.015,
    "sht4x": 0.01,
    "bme280": 0.01,
    "bmp280": 0.01,
    "dht22": 0.005,
}
DS18B20_S = {9: 0.094, 10: 0.188, 11: 0.375, 12: 0.75}  # by params.resolution
BOOT_S = 0.05  # from the wake-up to the first conversion started (imports, config)


def conversion_s(scfg: dict) -> float:
    """The slowest conversion of one configured sensor, in s."""
    if scfg["type"] == "ds18b20":
        return DS18B20_S.get((scfg.get("params") or {}).get("resolution", 12), 0.75)
    return CONVERSION_S.get(scfg["type"], 0.0)


def radio_ma(chip: str) -> float:
    cpu, rx, tx, _, _ = CHIPS[chip]
    return rx + TX_SHARE * (tx - rx)


def wake_mas(chip: str, awake_s: float, radio_s: float) -> float:
    """Charge of one wake in mA*s: radio_s of it with WiFi on, the rest CPU only."""
    cpu = CHIPS[chip][0]
    return cpu * (awake_s - radio_s) + radio_ma(chip) * radio_s


def cycle_mas(chip: str, wakes: list[tuple[float, float]], interval_s: int, board_ua=0.0):
    """Average charge per wake cycle (mA*s) over `wakes` [(awake_s, radio_s)], sleep
    included; board_ua: what the board draws asleep on top of the chip."""
    n = len(wakes)
    awake = sum(a for a, _ in wakes) / n
    woke = sum(wake_mas(chip, a, r) for a, r in wakes) / n
    sleep_ma = (CHIPS[chip][3] + board_ua) / 1000
    return woke + sleep_ma * max(interval_s - awake, 0.0)


def days(capacity_mah: float, usable: float, per_cycle_mas: float, interval_s: int) -> float:
    cycles = capacity_mah * 3600 * usable / per_cycle_mas
    return cycles * interval_s / 86400


def battery_lines(chip: str, wakes, interval_s: int, board_ua=0.0, indent="  ") -> list[str]:
    """The lines the bench and nodectl print for one scenario."""
    c = cycle_mas(chip, wakes, interval_s, board_ua)
    n = len(wakes)
    woke = sum(wake_mas(chip, a, r) for a, r in wakes) / n
    bats = ", ".join(
        "%s %d mAh: %.0f days" % (name, mah, days(mah, use, c, interval_s))
        for name, mah, use in BATTERIES
    )
    return [
        "%s%s: %.1f mAs per wake awake, %.1f mAs per %d s cycle with sleep; %s"
        % (indent, chip, woke, c, interval_s, bats)
    ]


def sleep_policy(lib: Path = REPO / "lib"):
    """lib/node/sleep.py, the device's own outage schedule (plain Python, no MicroPython
    modules), so the estimate counts the retries the node will make."""
    path = lib / "node" / "sleep.py"
    spec = importlib.util.spec_from_file_location("nodectl_node_sleep", path)
    if spec is None or spec.loader is None:
        raise ToolFailed(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def estimate_wakes(cfg: dict, wifi_s: float = WIFI_S, lib: Path = REPO / "lib") -> dict:
    """Estimated awake times for a normalized config: a wake with the network, one that
    skips it (an outage), a failed retry; and the spool's reach in an outage."""
    slowest = max([conversion_s(s) for s in cfg["sensors"]] or [0.0])
    ds = cfg["deep_sleep"]
    net = BOOT_S + max(wifi_s, slowest) + ROUND_TRIP_S
    skip = BOOT_S + slowest
    probe = BOOT_S + max(wifi_s, slowest) + ROUND_TRIP_S  # a refused connect ends it
    per_day = 86400 // ds["interval"]
    tries = sleep_policy(lib).network_wakes(per_day, ds)
    # The first failed wake waits out the whole cap; later retries stop at the first refusal.
    outage = [(float(ds["awake_cap"]), float(ds["awake_cap"]))]
    outage += [(probe, probe)] * (tries - 1)
    outage += [(skip, 0.0)] * (per_day - tries)
    recs = len(cfg["sensors"]) * per_day
    return {
        "up": [(net, net)],
        "outage": outage,
        "tries": tries,
        "per_day": per_day,
        "spool_day_bytes": recs * REC_BYTES,
    }


_RUNNER = """\
import json, sys, types
sys.path[:0] = [sys.argv[1]]
m = types.ModuleType("micropython"); m.const = lambda v: v
sys.modules.setdefault("micropython", m)
from node.config import check
from node.cfgfile import merge
with open(sys.argv[2]) as f:
    doc = json.load(f)
if len(sys.argv) > 3:
    with open(sys.argv[3]) as f:
        doc = merge(doc, json.load(f))
# WiFi credentials live in secrets.json and change nothing here: a placeholder if absent.
doc.setdefault("wifi", [{"ssid": "x", "password": "placeholder"}])
msgs, norm = check(doc, None, [])
print(json.dumps({"messages": msgs, "config": norm}))
"""


def normalized(lib: Path, config: Path, secrets: Path | None = None) -> dict:
    """The config with the device's defaults filled in, by the device's own validator;
    Refused with its messages when the config is not valid."""
    if not isinstance(load_json(config, "config"), dict):
        raise Refused(f"{config}: expected a JSON object {{...}} at the top")
    argv = [sys.executable, "-I", "-c", _RUNNER, str(lib), str(config)]
    if secrets is not None:
        load_json(secrets, "secrets")
        argv.append(str(secrets))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ToolFailed("the config validator did not finish in 60 s") from None
    if r.returncode != 0:
        raise ToolFailed("the config validator failed:\n" + (r.stdout + r.stderr).strip())
    d = json.loads(r.stdout)
    if d["config"] is None:
        raise Refused("\n".join(d["messages"]) + "\n(nodectl config-check tells more)")
    return d["config"]


def chip_of(boards: Path, name: str) -> str:
    path = boards / (name + ".json")
    if not path.is_file():
        raise Refused(f"unknown board {name!r} (no {path})")
    chip = load_json(path, "board").get("chip", "esp32")
    if chip not in CHIPS:
        raise Refused(f"no current figures for chip {chip!r} (known: {', '.join(CHIPS)})")
    return chip


def report(
    cfg: dict, chip: str, board_ua: float, wifi_s: float, lib: Path = REPO / "lib"
) -> list[str]:
    ds = cfg["deep_sleep"]
    iv = ds["interval"]
    e = estimate_wakes(cfg, wifi_s, lib)
    up_s = e["up"][0][0]
    out_s = sum(a for a, _ in e["outage"]) / len(e["outage"])
    lines = []
    if not ds["enabled"]:
        lines.append("deep_sleep is off: the node stays awake (radio on), days at best:")
        lines += battery_lines(chip, [(float(iv), float(iv))], iv, board_ua)
        return lines
    lines.append(
        "estimate for %s, wake every %d s, awake cap %d s (from the config; measure yours"
        " on the console or with `make bench`):" % (chip, iv, ds["awake_cap"])
    )
    lines.append("  broker reachable: about %.2f s awake per wake, WiFi on throughout" % up_s)
    lines += battery_lines(chip, e["up"], iv, board_ua, "    ")
    lines.append(
        "  broker or WiFi down all day: about %.2f s awake per wake on average"
        " (network tried on %d of %d wakes)" % (out_s, e["tries"], e["per_day"])
    )
    lines += battery_lines(chip, e["outage"], iv, board_ua, "    ")
    sp = cfg["spool"]
    # The store drops its oldest segment (a quarter) when full: count three quarters.
    reach_h = 24.0 * (sp["max_bytes"] * 3 // 4) / max(e["spool_day_bytes"], 1)
    lines.append(
        "  spool: %d B holds about %.0f h of readings in an outage (%d B a day)%s"
        % (
            sp["max_bytes"],
            reach_h,
            e["spool_day_bytes"],
            "" if reach_h >= 24 else "; raise spool.max_bytes to keep a day's outage",
        )
    )
    if board_ua == 0:
        lines.append(
            "  (chip only: add what your board draws asleep with --board-ua; a dev board's"
            " regulator and USB chip can draw 5000 uA and more)"
        )
    return lines


def cmd_battery(args) -> int:
    secrets = Path(args.secrets) if args.secrets else None
    cfg = normalized(Path(args.lib), Path(args.config), secrets)
    board = args.board or cfg.get("board") or "esp32-devkitc"
    chip = chip_of(Path(args.boards), board)
    for line in report(cfg, chip, args.board_ua, args.wifi_s, Path(args.lib)):
        print(line)
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser("battery", help="battery life estimate for a deep-sleep config")
    s.add_argument("config")
    s.add_argument("secrets", nargs="?")
    s.add_argument("--board", help="board name in boards/ (default: the config's board)")
    s.add_argument("--board-ua", type=float, default=0.0, help="board's own sleep current, uA")
    s.add_argument("--wifi-s", type=float, default=WIFI_S, help="WiFi association time, s")
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.add_argument("--boards", default=str(REPO / "boards"))
    s.set_defaults(func=cmd_battery)
