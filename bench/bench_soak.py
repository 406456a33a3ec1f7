#!/usr/bin/env python3
"""60-day virtual soak of the node (prints figures, never passes or fails).

The real node (lib/node, the durable store) runs in-process on the fake board and MQTT wrapper
of tests/mp/node_world.py with a 30-bit virtual clock (wraps like the ESP32's ticks), through
broker outages (minutes to a day), WiFi drops, a sensor vanishing for hours, CRC noise, a
DHT22 dead for a week, NTP unreachable for days and commanded reboots (tests/mp/
test_node_soak.py: Soak, plan). Prints readings taken, published, stale (a live value older
than its interval), lost, duplicates, hourly audit failures, heap drift from day 2 to the
last day, and wall time; on the device twin too when it is built (its heap figures are the
ones that count: 32-bit, float32). `make test` runs the same soak for 4 days.

    .venv/bin/python bench/bench_soak.py [--days 60]
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRIVER = "import test_node_soak as S\nprint('SOAK', repr(S.Soak(%d).run()))\n"


def run(binary: Path, days: int, twin: bool) -> dict | None:
    board = [] if twin else [str(REPO / "tools" / "sim" / "board")]
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(
        board + [".frozen", str(REPO / "lib"), str(REPO / "tests" / "mp")]
    )
    env["SIM_ROOT"] = str(REPO)
    p = subprocess.run(
        [str(binary), "-c", DRIVER % days],
        env=env,
        cwd=REPO / "tests" / "mp",
        capture_output=True,
        text=True,
        timeout=1800,
    )
    for line in p.stdout.splitlines():
        if line.startswith("SOAK "):
            return ast.literal_eval(line[5:])
    print(p.stdout[-2000:], p.stderr[-2000:], file=sys.stderr)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=60)
    a = ap.parse_args()
    unix = REPO / ".venv" / "bin" / "micropython"
    twin = REPO / "build" / "twin" / "micropython"
    keys = (
        "taken", "published", "live", "backlog_msgs", "stale", "lost", "duplicates", "wrong",
        "wrong_time", "max_live_age_s", "late_to_backlog", "store_dropped", "sensor_errors",
        "audits", "availability_wrong", "timers_stuck", "boots", "ntp_calls",
        "heap_drift_kb", "heap_spread_kb", "wall_s",
    )  # fmt: skip
    for name, b, is_twin in (("unix 64-bit", unix, False), ("twin 32-bit float32", twin, True)):
        if not b.exists():
            print("soak on %s: not built (make twin), skipped" % name)
            continue
        r = run(b, a.days, is_twin)
        print("soak %d simulated days on the %s port:" % (a.days, name))
        if r is None:
            print("  failed (output above)")
            continue
        for k in keys:
            print("  %-20s %s" % (k, r.get(k)))


if __name__ == "__main__":
    main()
