"""The robust wrapper's spill: opening its store (mqtt.store) on flash, an outbox entry as one
line of it and back, spilling and refilling. Part of mqtt.robust, imported only when the RAM
outbox overflows, or when an earlier run left a spill, so a wrapper that never spills pays no
heap for it.

    rec = encode([b"t", b"21.5", False, 1, 0, 0])     # b"10r1:t21.5"
    e = decode(rec)                                   # [b"t", b"21.5", False, 1, 0, 0]
"""

import os

from micropython import const

_TOPIC = const(0)
_MSG = const(1)
_RETAIN = const(2)
_QOS = const(3)


def left(path):
    """True if an earlier run left spill files at path (path.<n>)."""
    d, _, base = path.rpartition("/")
    try:
        names = os.listdir(d or ".")
    except OSError:
        return False
    base += "."
    return any(n.startswith(base) for n in names)


def encode(e):
    """An outbox entry as one spill-store record: QoS, retain, "r" (raw) or "h" (hex, when the
    topic or payload holds a newline, which ends a record), topic length, ":", topic, payload."""
    t, m = e[_TOPIC], e[_MSG]
    t = t.encode() if isinstance(t, str) else bytes(t)
    m = m.encode() if isinstance(m, str) else bytes(m)
    if b"\n" in t or b"\n" in m:
        from binascii import hexlify

        return b"%d%dh%d:%s%s" % (e[_QOS], e[_RETAIN] and 1, len(t) * 2, hexlify(t), hexlify(m))
    return b"%d%dr%d:%s%s" % (e[_QOS], e[_RETAIN] and 1, len(t), t, m)


def decode(rec):
    """The outbox entry of an encode()d record (topic and payload as bytes)."""
    c = rec.index(b":")
    n = int(rec[3:c])
    t, m = rec[c + 1 : c + 1 + n], rec[c + 1 + n :]
    if rec[2] == 104:  # "h"
        from binascii import unhexlify

        t, m = unhexlify(t), unhexlify(m)
    return [t, m, rec[1] == 49, rec[0] - 48, 0, 0]


def open_store(w):
    from mqtt.store import Store

    d = w._spill_path.rpartition("/")[0]
    try:
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass  # there already
        probe = w._spill_path + ".probe"
        open(probe, "wb").close()  # a read-only or missing filesystem says so now
        os.remove(probe)
        w._spill = Store(w._spill_path, 8, w._spill_max, 8)
    except (OSError, ValueError):
        w._spill_off = True
    return w._spill


def spill(w, e):
    """Spill one entry; False when spilling is off or the filesystem refuses it."""
    if w._spill_off:
        return False
    sp = w._spill or open_store(w)
    if sp is None:
        return False
    sp.put(encode(e))
    if sp.errors and not sp.writes:
        w._spill_off = True  # nothing ever reached flash: not writable here
    return True


def refill(w, sp):
    """Move the oldest spilled messages into the outbox as it has room (a batch)."""
    ob = w.outbox
    n = ob.max_msgs - len(ob)
    if n <= 0:
        return
    recs = sp.peek(n if n < 8 else 8)
    for r in recs:
        if r is not None:  # a torn record is skipped (and counted by the store)
            ob.append(decode(r))
    sp.commit()
