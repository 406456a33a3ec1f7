"""Power cuts during a broker outage: the real firmware on the simulated board, killed with
SIGKILL (nothing gets to run, as when the supply drops) 20 times at random points while the
broker is unreachable, then the broker comes back.

What must hold (the node's promise for readings):
- no reading taken before a cut is lost: every record on the board's flash at any cut arrives
  on B/backlog, and the readings' times have no hole except one per cut (the dead board and
  its boot);
- a reading arrives twice only if it was in flight when the link went (handed to the wrapper,
  its acknowledgement lost), and each record carries its own time so a consumer drops it.

The cut points come from a seeded random generator; the seed is printed (run with -s) and in
every failure message; POWERCUT_SEED=<n> repeats a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import zlib
from pathlib import Path

import pytest
from test_node_sim import BME, Observer, SimNode, config, scenario

CUTS = 20
SPEED = 20  # simulated seconds per real second: a 5 s interval is a reading every 0.25 s
INTERVAL = 5

pytestmark = pytest.mark.timeout(150)


def _flash_records(dev: Path) -> set[bytes]:
    """Whole records in the store's segment files (lines torn by a cut fail their CRC)."""
    out = set()
    for f in dev.iterdir():
        if not (f.name.startswith("spool.dat.") and f.name[-1].isdigit()):
            continue
        for line in f.read_bytes().splitlines():
            rec = line[9:]
            try:
                ok = int(line[:8], 16) == zlib.crc32(rec) & 0xFFFFFFFF
            except ValueError:
                ok = False
            if ok:
                out.add(rec)
    return out


def test_twenty_power_cuts_mid_outage_lose_no_reading(broker, make_proxy, tmp_path):
    seed = int(os.environ.get("POWERCUT_SEED") or random.randrange(1 << 32))
    print("power-cut seed %d (POWERCUT_SEED=%d repeats this run)" % (seed, seed))
    rnd = random.Random(seed)
    base = "PC%d/Keller" % os.getpid()
    why = "seed %d" % seed
    proxy = make_proxy(broker.port)
    o = Observer(broker.port, [base + "/#"])
    node = None
    try:
        cfg = config(proxy.port, topic=base, interval=INTERVAL)
        node = SimNode(tmp_path / "n", cfg, scenario(SPEED, [BME])).start()
        assert o.wait(lambda: len(o.topic(base + "/json")) >= 2, 40), node.log()
        proxy.mode("refuse")  # the broker is gone: every connection closed at once
        outage_t = time.time()
        on_flash: set[bytes] = set()
        cut_at = []  # simulated epoch seconds of each cut (where the world's clock went on)
        for _ in range(CUTS):
            time.sleep(rnd.uniform(0.4, 1.6))  # a random point of the node's life
            node.power_cut()
            on_flash |= _flash_records(node.dev)
            cut_at.append(json.loads((node.state / "boot.json").read_text())["epoch_us"] // 10**6)
        time.sleep(rnd.uniform(0.4, 1.6))
        on_flash |= _flash_records(node.dev)
        # On a loaded machine the boots between cuts leave fewer readings: let the outage run
        # on (bounded) until there are enough stored records to tell anything.
        enough_by = time.time() + 30
        while len(on_flash) < CUTS and time.time() < enough_by:
            time.sleep(0.5)
            on_flash |= _flash_records(node.dev)
        proxy.mode("pass")

        def all_back():
            return {p.encode() for p in o.topic(base + "/backlog")} >= on_flash

        assert o.wait(all_back, 60), (why, node.log())
        n_live = len(o.topic(base + "/json"))
        assert o.wait(lambda: len(o.topic(base + "/json")) >= n_live + 3, 30), why
        time.sleep(1)

        live = [json.loads(p)["t"] for p in o.topic(base + "/json")]
        back = [json.loads(p) for p in o.topic(base + "/backlog")]
        kills = [c for c in node.codes() if c == -signal.SIGKILL]
        assert len(kills) == CUTS, (why, node.codes())
        assert len(on_flash) >= CUTS, (why, "too few readings stored to tell anything")
        # Each record carries its own measurement time (the clock was synced before the outage).
        assert all(isinstance(b.get("t"), int) and b["s"] == "bme280" for b in back), (why, back)
        assert all(abs(b["Temp"] - 21.37) <= 0.02 for b in back), why
        missing = on_flash - {p.encode() for p in o.topic(base + "/backlog")}
        assert not missing, (why, "stored before a cut, never delivered", missing)

        allt = sorted(live + [b["t"] for b in back])
        twice = sorted({t for t in allt if allt.count(t) > 1})
        # In flight at a cut: only what the wrapper held when the link went, before the
        # outage; during it nothing reaches the broker, so nothing else may repeat.
        cut_start = max(t for t in live if t <= outage_t + 1) if live else 0
        assert all(t <= cut_start + INTERVAL for t in twice), (why, "repeated", twice, allt)
        assert all(allt.count(t) <= 2 for t in twice), (why, allt)
        uniq = sorted(set(allt))
        gaps = [b - a for a, b in zip(uniq, uniq[1:], strict=False)]
        holes = [(a, b) for a, b in zip(uniq, uniq[1:], strict=False) if b - a > INTERVAL + 1]
        print(
            "%d cuts: %d records on flash, %d on backlog, %d live, %d holes, repeats %s"
            % (len(kills), len(on_flash), len(back), len(live), len(holes), twice)
        )
        # A hole in the readings only where the board was dead and booting: each spans a cut of
        # its own; everywhere else a reading every INTERVAL s.
        spans = [[c for c in cut_at if a < c <= b] for a, b in holes]
        assert all(spans), (why, "readings missing away from any cut", holes, spans, cut_at)
        # (the first gap may be shorter: the first reading at boot, then on the interval grid)
        assert all(g >= INTERVAL - 1 for g in gaps[1:]), (why, gaps)
    finally:
        o.stop()
        if node is not None:
            node.stop()
