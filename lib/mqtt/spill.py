"""Spilling the robust wrapper's outbox to flash: what does not fit in RAM waits in a Store.

Imported only when the RAM outbox first overflows (or a spill from before a reboot exists), so
a wrapper that never overflows pays nothing for it. One record per message: a flag byte
(``"0"`` + qos, + 4 when retained), the topic, a NUL (never part of a valid topic, MQTT-1.5.3-2),
the payload; backslash and newline escaped because the store keeps one record per line.

    sp = open_spill("mqtt_out", 65536)
    add(sp, b"t", b"21.5", False, 1)
    refill(sp, outbox, 8)       # oldest first, back into the RAM outbox
"""

import os

from mqtt.store import Store


def open_spill(d, max_bytes):
    try:
        os.mkdir(d)
    except OSError:
        pass  # exists, or not writable: the store counts its failed writes in errors
    return Store(d + "/out", ram=16, max_bytes=max_bytes, batch=8)


def add(sp, topic, msg, retain, qos):
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(msg, str):
        msg = msg.encode()
    r = bytes((48 + qos + (4 if retain else 0),)) + topic + b"\0" + msg
    sp.put(r.replace(b"\\", b"\\s").replace(b"\n", b"\\n"))


def refill(sp, ob, n):
    """Move up to n of the oldest spilled messages into the outbox ob."""
    for r in sp.peek(n):
        if r is None:
            continue  # a corrupt line: skipped, counted by the store
        # After escaping every backslash starts "\s" or "\n", so this order undoes it exactly.
        r = r.replace(b"\\n", b"\n").replace(b"\\s", b"\\")
        i = r.find(b"\0")
        f = r[0] - 48
        ob.put(r[1:i], r[i + 1 :], bool(f & 4), f & 3)
    sp.commit()
