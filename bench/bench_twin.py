#!/usr/bin/env python3
"""Heap of the node on the device twin (32-bit, float32, like the ESP32): prints figures.

One line per form of lib/, frozen into the twin first, then as .mpy files (as deployed):

    twin frozen client_kb A robust_kb B node_boot_kb C node_steady_kb D heap_kb E ok|fail
    twin mpy    client_kb A robust_kb B node_boot_kb C node_steady_kb D heap_kb E ok|fail

A: heap taken by `from mqtt.client import MQTTClient`; B: that plus `import mqtt.robust`;
C: the node right after boot; D: the node's allocated heap after gc in steady state (the last
of the samples taken every 1000 loop cycles) with the default scenario's sensors; E: the smallest
heap, in 8 KB steps (and 64,000 B, an ESP32's first heap area, in place of 64 KB), on top of the
simulated board's own share (measured first and subtracted: on an ESP32 that is C code), in
which 10,000 loop cycles with two broker outages, a set_config and a Home Assistant restart run
without a MemoryError. `ok` when E fits 64,000 B. All heap figures are KB of 1024 B.

    make bench-twin          (builds build/twin/ and build/twin-frozen/ first)
    .venv/bin/python bench/bench_twin.py [--cycles 10000] [--form mpy]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import bench_node as BN  # noqa: E402

TWIN = {
    "mpy": REPO / "build" / "twin" / "micropython",
    "frozen": REPO / "build" / "twin-frozen" / "micropython",
}
ESP32_FIRST_HEAP = 64000
MAX_HEAP = 256 * 1024
# Simulated ms between loop cycles: 10,000 cycles are 200 s of the node's life at speed 20 (10 s
# real), so each outage (1000 cycles) lasts 20 s, ten readings at the bench's 2 s interval.
STEP_MS = 20

IMPORTS = r"""
import gc
import machine, network, time  # the simulated board: C code on the device, not counted
gc.collect()
a = gc.mem_alloc()
from mqtt.client import MQTTClient
gc.collect()
b = gc.mem_alloc()
import mqtt.robust
gc.collect()
print("IMPORTS", b - a, gc.mem_alloc() - a)
"""


def import_heap(interp: BN.Interp, dev: Path, env: dict) -> tuple[int, int]:
    r = subprocess.run(
        [interp.path, "-c", IMPORTS], cwd=dev, env=env, capture_output=True, text=True, timeout=60
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("IMPORTS ")]
    if not line:
        raise RuntimeError("import probe failed:\n" + (r.stdout + r.stderr)[-2000:])
    client, robust = line[-1].split()[1:]
    return int(client), int(robust)


def candidates() -> list[int]:
    """Heap sizes to try, smallest first: 8 KB steps, with 64,000 B in place of 64 KB."""
    return [ESP32_FIRST_HEAP if k == 8 else k * 8192 for k in range(1, MAX_HEAP // 8192 + 1)]


class Runs:
    """Heap runs of one form of lib/: each on a fresh copy of the prepared device and a fresh
    board state (a set_config rewrites config.json), all through one fault proxy, since the
    device's config names the proxy's port."""

    def __init__(
        self, interp: BN.Interp, dev: Path, env: dict, sim_base: int, cycles: int, events: BN.Events
    ):
        self.interp, self.dev0, self.env0 = interp, dev, env
        self.sim_base, self.cycles, self.events = sim_base, cycles, events
        self.n = 0

    def run(self, heap_on_top: int) -> dict:
        self.n += 1
        run_dir = self.dev0.parent / ("run%d" % self.n)
        dev = run_dir / "device"
        shutil.copytree(self.dev0, dev)
        env = dict(self.env0, SIM_STATE_DIR=str(run_dir / "state"))
        (run_dir / "state").mkdir()
        self.events.proxy.mode("pass")
        self.events.done = []
        try:
            return BN.run_cycles(
                self.interp,
                dev,
                env,
                self.sim_base + heap_on_top,
                self.cycles,
                self.events,
                STEP_MS,
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def passes(self, heap_on_top: int) -> bool:
        d = self.run(heap_on_top)
        # A node that had to start in safe mode (its config unreadable in that little memory:
        # no sensors, no discovery) has not passed, however quietly it ran.
        safe = d.get("safe")
        ok = "failed" not in d and not d["memory_error"] and d["exit"] == 0 and safe is None
        if ok:
            why = "ok"
        elif d["memory_error"]:
            why = "MemoryError"
        elif "failed" not in d and d["exit"] == 0:
            why = "safe mode: %s" % safe
        else:
            why = "exit %s" % d["exit"]
        print(
            "    %7d B on top of the board: %s (%.0f s)" % (heap_on_top, why, d["wall_s"]),
            flush=True,
        )
        return ok

    def smallest_heap(self) -> int | None:
        """Binary search over candidates() for the smallest heap that passes (None: not even
        the largest). Less heap means more collections, never more room: the outcome is
        monotonic in the size."""
        sizes = candidates()
        lo, hi = -1, len(sizes) - 1
        if not self.passes(sizes[hi]):
            return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.passes(sizes[mid]):
                hi = mid
            else:
                lo = mid
        return sizes[hi]


def kb(n: int) -> str:
    return ("%.1f" % (n / 1024)).rstrip("0").rstrip(".")


def bench_form(form: str, port: int, cycles: int, work: Path) -> str:
    interp = BN.Interp(str(TWIN[form]), twin=True, frozen=form == "frozen")
    ev = BN.Events(port, "Bench/Heap")
    try:
        dev, env, sim_base = BN.prepare(ev.proxy.port, work / form, interp)
        client, robust = import_heap(interp, dev, env)
        runs = Runs(interp, dev, env, sim_base, cycles, ev)
        print(
            "  %s: the simulated board's own share %d B; a run with %s KB on top:"
            % (form, sim_base, kb(MAX_HEAP)),
            flush=True,
        )
        d = runs.run(MAX_HEAP)
        if "failed" in d:
            raise RuntimeError("twin %s bench failed %s" % (form, d["failed"]))
        print(
            "    events %s; boots %d; allocated after gc every 1000 cycles %s"
            % (",".join(ev.done), d["boots"], d["samples"]),
            flush=True,
        )
        print("  %s: smallest heap for the run:" % form, flush=True)
        e = runs.smallest_heap()
    finally:
        ev.close()
    e_txt = kb(e) if e is not None else ">%s" % kb(MAX_HEAP)
    verdict = "ok" if e is not None and e <= ESP32_FIRST_HEAP else "fail"
    return "twin %s client_kb %s robust_kb %s node_boot_kb %s node_steady_kb %s heap_kb %s %s" % (
        form,
        kb(client),
        kb(robust),
        kb(d["imports_and_boot"]),
        kb(d["samples"][-1]),
        e_txt,
        verdict,
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--form", choices=("frozen", "mpy"), action="append")
    args = ap.parse_args()
    forms = args.form or ["frozen", "mpy"]
    for f in forms:
        if not TWIN[f].exists():
            print("%s is missing: run `make bench-twin` (it builds the twin)" % TWIN[f])
            return 2
    from tests.fixtures.broker import Broker, make_certs

    work = Path(tempfile.mkdtemp(prefix="bench-twin-"))
    broker = Broker(work / "broker", make_certs(work / "certs"))
    broker.start()
    lines = []
    try:
        for f in forms:
            lines.append(bench_form(f, broker.port, args.cycles, work))
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("device twin (32-bit, float32), heap in KB:")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
