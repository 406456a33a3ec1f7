"""Spill records: an outbox entry as one line of the wrapper's spill store (mqtt.store), and
back. Imported only when the RAM outbox overflows, or when an earlier run left a spill, so a
wrapper that never spills pays no heap for it.

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
