"""The node's console log: one line per state change, kept in a small ring for MQTT.

Every part reports a state under a key ("wifi", "mqtt", "sensor bme280", ...); a line is
printed and kept only when that key's state changes. The same state again is counted and, at
most every REMIND_MS, printed once more with the count. The ring holds the last RING lines
(each cut to WIDTH characters); when full the oldest is dropped and counted in `dropped`.

    from node import log
    log.say("wifi", "no AP named 'home'")   # printed once, however often it is said
    line = log.take()                        # oldest line not yet published, or None
"""

import time

RING = 16  # lines kept for <base>/log; more drop the oldest (counted in `dropped`)
WIDTH = 100  # characters kept per line
REMIND_MS = 300000  # a state that persists is printed again at most this often, with a count

_state = {}  # key -> [text, ticks of last print, repeats since]
ring = []
dropped = 0
epoch = None  # callable giving epoch seconds once the time is synced, else None
uptime = None  # callable giving seconds since boot (the node's counter, right past the wrap)
_t0 = time.ticks_ms()


def say(key, text, now=None):
    """Report `key`'s state; prints and keeps a line only when it changed (or as a reminder)."""
    if now is None:
        now = time.ticks_ms()
    s = _state.get(key)
    if s is not None and s[0] == text:
        s[2] += 1
        d = time.ticks_diff(now, s[1])
        if 0 <= d < REMIND_MS:  # negative: said more than 6.2 days ago, so remind
            return
        line = "%s: %s (still, %d times)" % (key, text, s[2])
        s[1] = now
        s[2] = 0
    else:
        _state[key] = [text, now, 0]
        line = "%s: %s" % (key, text)
    _emit(line, now)


def _emit(line, now):
    global dropped
    t = epoch() if epoch is not None else None
    if t:
        stamp = "%d" % t
    else:
        stamp = "+%d" % (uptime() if uptime is not None else time.ticks_diff(now, _t0) // 1000)
    line = (stamp + " " + line)[:WIDTH]
    print(line)
    if len(ring) >= RING:
        ring.pop(0)
        dropped += 1
    ring.append(line)


def take():
    """The oldest kept line not yet handed out, or None."""
    return ring.pop(0) if ring else None
