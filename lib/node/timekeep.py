"""Wall-clock time for timestamps: NTP with bounded retries, Unix seconds, "unsynced" flagged.

Embedded ports count from 2000-01-01, the Unix port from 1970; `unix()` always returns Unix
seconds. Until an NTP sync succeeded, `unix()` returns None so payloads say "unsynced" instead of
carrying a made-up time. Each attempt is one `ntptime.settime()` (a UDP round trip bounded by
ntptime's own 1 s timeout); attempts are spaced 2, 4, 8 ... s apart, at most `retries` quickly,
then every 5 minutes, and a synced clock is refreshed every `resync` seconds. The console log
(node.log) says when the clock got synced and why an attempt failed, once per change.

    tk = Timekeeper(retries=3, resync=21600)
    tk.step(now_ms, wifi_up)    # from the loop
    tk.unix()                   # 1763784000 or None
"""

import time

from node import log as _log

# Seconds from 1970-01-01 to 2000-01-01.
EPOCH_2000 = 946684800


def epoch_offset(tm=time):
    """What to add to time.time() to get Unix seconds on this port."""
    return EPOCH_2000 if tm.gmtime(0)[0] == 2000 else 0


class Timekeeper:
    def __init__(self, server="pool.ntp.org", retries=3, resync=21600, clock=time, ntp=None):
        self.server = server
        self.retries = retries
        self.resync_ms = resync * 1000
        self.clock = clock
        self._ntp = ntp
        self._off = epoch_offset(clock)
        self.synced = False
        self.synced_at = None  # Unix seconds of the last successful sync (kept across sleep)
        self.fails = 0  # failed attempts since the last success
        self.syncs = 0
        self.last_error = None
        self._next = None  # ticks_ms of the next attempt; None = at once when wifi is up
        _log.epoch = self.unix  # console lines carry Unix seconds once synced

    def _module(self):
        if self._ntp is None:
            import ntptime  # lazy: only nodes that sync load it

            self._ntp = ntptime
        return self._ntp

    def step(self, now, wifi_up):
        """Attempt a sync if one is due; returns True when an attempt was made."""
        if self.server is None or not wifi_up:
            return False
        c = self.clock
        if self._next is not None and c.ticks_diff(now, self._next) < 0:
            return False
        try:
            m = self._module()
            if hasattr(m, "host"):
                m.host = self.server
            m.settime()
        except Exception as e:  # noqa: BLE001 - OSError, timeouts, DNS: all just "not now"
            self.fails += 1
            self.last_error = repr(e)
            if self.fails <= self.retries:
                delay = 2000 << (self.fails - 1)
            else:
                delay = 300000
            self._next = c.ticks_add(now, delay)
            _log.say("ntp", "no time from %s: %s" % (self.server, _why(e)))
            return True
        news = not self.synced or self.fails
        self.synced = True
        self.synced_at = self.unix()
        self.syncs += 1
        self.fails = 0
        self._next = c.ticks_add(now, self.resync_ms)
        if news:
            _log.say("ntp", "synced with %s" % self.server)
        return True

    def unix(self):
        """Unix seconds (int) when synced, else None."""
        if not self.synced:
            return None
        return int(self.clock.time()) + self._off

    def mark_synced(self, next_ms=None, synced_at=None):
        """The clock is known good without NTP (e.g. kept by the RTC through deep sleep). The
        next sync in `next_ms` (None: as soon as WiFi is up); `synced_at` the last one's time."""
        self.synced = True
        if synced_at is not None:
            self.synced_at = synced_at
        if next_ms is not None:
            self._next = self.clock.ticks_add(self.clock.ticks_ms(), next_ms)


def _why(e):
    """An NTP failure in words: no answer, no DNS, or the exception itself."""
    import errno

    n = e.args[0] if isinstance(e, OSError) and e.args else None
    if n == errno.ETIMEDOUT:
        return "no answer within 1 s (UDP 123 blocked, or server down?)"
    if n in (-2, -3, -200, -202):  # getaddrinfo: glibc EAI_NONAME/EAI_AGAIN, lwIP on the ESP32
        return "cannot resolve the name (DNS)"
    return repr(e)
