#!/usr/bin/env python3
"""Mutated-config fuzz at length: prints figures, never passes or fails.

Runs the seeded cases of tests/mp/test_node_config_fuzz.py inside MicroPython as the device
runs the validator: on the device twin (32-bit, float32) when it is built, else the Unix port,
with a 256 KB heap. Every case is read (`cfgfile.parse_json`), checked, compared with
`remote_change_problems` and redacted; a case that raises is a crash.

    config fuzz: 2000 cases, 0 crashes (twin, heap 256K, seed 1, 4.1 s)

    .venv/bin/python bench/bench_config_fuzz.py [--cases 2000] [--seed 1] [--heap 256K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWIN = REPO / "build" / "twin" / "micropython"

SNIPPET = """
import test_node_config_fuzz as F
n, bad, first = F.run(%d, %d)
for line in first:
    print("crash " + line)
print("RESULT %%d %%d" %% (n, bad))
"""


def interpreter() -> tuple[str, str]:
    if TWIN.exists():
        return str(TWIN), "twin"
    for p in (REPO / ".venv" / "bin" / "micropython", shutil.which("micropython")):
        if p and Path(p).exists():
            return str(p), "unix port"
    raise SystemExit("config fuzz: no micropython found (make venv, or make twin)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heap", default="256K")
    a = ap.parse_args()
    mp, kind = interpreter()
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([str(REPO / "lib"), str(REPO / "tests" / "mp")])
    t0 = time.monotonic()
    r = subprocess.run(
        [mp, "-X", "heapsize=" + a.heap, "-c", SNIPPET % (a.cases, a.seed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    dt = time.monotonic() - t0
    for line in r.stdout.splitlines():
        if line.startswith("crash "):
            print("  " + line)
    res = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not res:
        print("config fuzz: the run itself failed (exit %d)" % r.returncode)
        print(r.stderr[-2000:] or r.stdout[-2000:])
        return 0
    n, bad = (int(x) for x in res[-1].split()[1:3])
    print(
        "config fuzz: %d cases, %d crashes (%s, heap %s, seed %d, %.1f s)"
        % (n, bad, kind, a.heap, a.seed, dt)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
