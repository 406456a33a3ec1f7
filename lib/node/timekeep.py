"""Wall-clock time for timestamps: NTP with bounded retries, Unix seconds, "unsynced" flagged.

Embedded ports count from 2000-01-01, the Unix port from 1970; `unix()` always returns Unix
seconds. Until an NTP sync succeeded, `unix()` returns None so payloads say "unsynced" instead of
carrying a made-up time. Each attempt is one `ntptime.settime()` (a UDP round trip bounded by
ntptime's own 1 s timeout); attempts are spaced 2, 4, 8 ... s apart, at most `retries` quickly,
then every 5 minutes, and a synced clock is refreshed every `resync` seconds. The console log
(node.log) says when the clock got synced and why an attempt failed, once per change.

It also keeps the node's uptime: `ticks_ms()` wraps (2^30 ms) and `ticks_diff()` means nothing
beyond 2^29 ms (6.2 days), so uptime is a counter that adds the ticks since the last call. The
loop calls `uptime()` every step; any call less than 6.2 days after the previous one keeps
it exact, for years.

    tk = Timekeeper(retries=3, resync=21600)
    tk.step(now_ms, wifi_up)    # from the loop
    tk.unix()                   # 1763784000 or None
    tk.uptime(now_ms)           # whole seconds since the Timekeeper was made (the boot)
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
        # uptime second of the next attempt; None = at once when wifi is up. Uptime, not
        # ticks: WiFi may be down for weeks, and resync may be a week (> 2^29 ms).
        self._next = None
        self._last = clock.ticks_ms()  # ticks at the last uptime call
        self._s = 0  # whole seconds of uptime up to _last (a small int for 34 years)
        self._ms = 0  # and the milliseconds over (< 1000)
        _log.epoch = self.unix  # console lines carry Unix seconds once synced

    def uptime(self, now):
        """Whole seconds since boot; exact as long as calls are less than 6.2 days apart."""
        d = self.clock.ticks_diff(now, self._last)
        if d > 0:  # an older `now` (taken before the last call) adds nothing
            self._last = now
            ms = self._ms + d
            self._s += ms // 1000
            self._ms = ms % 1000
        return self._s

    def uptime_ms(self, now):
        """Milliseconds since boot (a long int after 12 days on the ESP32: call it rarely)."""
        return self.uptime(now) * 1000 + self._ms

    def _module(self):
        if self._ntp is None:
            import ntptime  # lazy: only nodes that sync load it

            self._ntp = ntptime
        return self._ntp

    def step(self, now, wifi_up):
        """Attempt a sync if one is due; returns True when an attempt was made."""
        up = self.uptime(now)  # first: every step counts, WiFi or not
        if self.server is None or not wifi_up:
            return False
        if self._next is not None and up < self._next:
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
            self._next = self._after(now, delay)
            _log.say("ntp", "no time from %s: %s" % (self.server, _why(e)))
            return True
        news = not self.synced or self.fails
        self.synced = True
        self.synced_at = self.unix()
        self.syncs += 1
        self.fails = 0
        self._next = self._after(now, self.resync_ms)
        if news:
            _log.say("ntp", "synced with %s" % self.server)
        return True

    def _after(self, now, ms):
        """The first uptime second at least `ms` from now (never early, at most 1 s late)."""
        return self.uptime(now) + (self._ms + ms + 999) // 1000

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
            self._next = self._after(self.clock.ticks_ms(), next_ms)


def _why(e):
    """An NTP failure in words: no answer, no DNS, or the exception itself."""
    import errno

    n = e.args[0] if isinstance(e, OSError) and e.args else None
    if n == errno.ETIMEDOUT:
        return "no answer within 1 s (UDP 123 blocked, or server down?)"
    if n in (-2, -3, -200, -202):  # getaddrinfo: glibc EAI_NONAME/EAI_AGAIN, lwIP on the ESP32
        return "cannot resolve the name (DNS)"
    return repr(e)
