"""Deep sleep: the policy of a battery node, loaded only when deep sleep is configured.

A battery node's cost is its time awake, so a wake overlaps what can overlap: the app starts
every sensor conversion, then brings up WiFi; the conversions finish while the radio
associates (the longer of the two sets the floor), the readings are held, published live on
connect together with the stored backlog, and the node sleeps as soon as the broker has
acknowledged everything. The awake cap is absolute: the node sleeps when it is reached,
broker or not.

Outages: a wake whose network never reached the broker counts as failed. After
`outage_after` failed wakes in a row the node skips the network on most wakes (its readings
go to the durable store with their measurement time) and tries again after 1, 2, 4 ... skipped
wakes, at most `retry_max` seconds apart; a retry while failing gives up at its first refused
connect or after PROBE_MS. The first wake that reaches the broker clears it all and sends the
backlog. Skipping needs a clock the RTC kept (synced by NTP since power-on): without one, a
stored reading would carry no time, so such a node tries the network on every wake.

RTC memory (kept across deep sleep, lost on power loss) carries only small facts from one
wake to the next: clock synced and when, discovery sent, failed wakes in a row, wakes left to
skip. Readings are never kept there (node.delivery owns them, on flash).

    sl = Sleeper(cfg["deep_sleep"], board, clock, t_reset)
    if sl.net: ...start WiFi...   # False on a wake that skips the network
    act = sl.step(now, node)      # None, or ("sleep", ms)
    sl.save(synced, announced, synced_at)
"""

import json

CAP_MARGIN_MS = 200  # start going to sleep this much before the cap: shutting down takes a step
PROBE_MS = 5000  # a retry during an outage: WiFi association (~1.5 s) plus one connect attempt
MIN_SLEEP_MS = 1000
_MAX_DOUBLINGS = 16  # bounds 1 << n in the schedule
_MAGIC = "N2"


def skips(fails, after, most):
    """Wakes to skip the network after `fails` failed wakes in a row: 0 before `after`, then
    1, 2, 4 ... at most `most`."""
    if fails < after or most <= 0:
        return 0
    n = fails - after
    s = 1 << (n if n < _MAX_DOUBLINGS else _MAX_DOUBLINGS)
    return s if s < most else most


def most_skips(cfg):
    """Most wakes skipped in a row: a retry at least every retry_max seconds."""
    m = cfg["retry_max"] // cfg["interval"] - 1
    return m if m > 0 else 0


def network_wakes(wakes, cfg):
    """How many of `wakes` consecutive wakes use the network when the broker stays away:
    the schedule above from its start (for battery estimates and tests)."""
    after, most = cfg["outage_after"], most_skips(cfg)
    fails = tries = skip = 0
    for _ in range(wakes):
        if skip:
            skip -= 1
            continue
        tries += 1
        fails += 1
        skip = skips(fails, after, most)
    return tries


class Sleeper:
    def __init__(self, cfg, board, clock, t_reset):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.t_reset = t_reset
        self.awake = False  # a retained stay-awake switch is on
        self.seen_at = None  # ticks_ms of the first connect of this wake
        self.meta = {}
        raw = board.rtc_memory()
        if raw:
            try:
                d = json.loads(raw)
                if isinstance(d, dict) and d.get("m") == _MAGIC:
                    self.meta = d.get("x") or {}
            except (ValueError, TypeError):
                pass  # garbage after power-on: start empty
        m = self.meta
        self.failing = m.get("nf", 0) > 0  # the last wake with a network failed
        skip = m.get("skip", 0)
        # Skip only with a clock the RTC kept: a stored reading must carry its time.
        self.net = not (skip > 0 and m.get("synced"))
        if not self.net:
            m["skip"] = skip - 1
            self._write()  # now: a wake that never reaches save() still counts as skipped

    def resync_in(self, now_unix, resync_s):
        """Milliseconds until the clock is due for NTP again (0: now), from the time of the
        last sync kept in RTC memory."""
        ts = self.meta.get("ts")
        if ts is None or now_unix is None:
            return 0
        left = ts + resync_s - now_unix
        if left <= 0:
            return 0
        if left > resync_s:  # the clock went back: trust neither
            return 0
        return left * 1000 if left < 500000 else 500000000  # ticks: keep below 2^29 ms

    def set_awake(self, msg):
        self.awake = msg.strip().lower() in (b"1", b"on", b"true", b"stay")

    def connected(self, now):
        if self.seen_at is None:
            self.seen_at = now

    def step(self, now, n):
        """None while the wake has work; ("sleep", ms) when done or at the cap."""
        up = self.clock.ticks_diff(now, self.t_reset)  # the cap counts booting too
        cap = self.cfg["awake_cap"] * 1000
        if up < cap - CAP_MARGIN_MS:
            if self.awake or not n.sensing.all_tried():
                return None
            if self.net:
                if self.seen_at is None:
                    if not self.failing or not self._give_up(up, n):
                        return None
                # After our first QoS 1 message (status online, sent after the SUBSCRIBEs)
                # is acknowledged, a retained stay-awake has arrived too: a broker answers one
                # connection's packets in order.
                elif not n.link.online() or n.busy():
                    return None
        elif self.awake:
            return None
        iv = self.cfg["interval"] * 1000
        return ("sleep", iv - up if iv - up > MIN_SLEEP_MS else MIN_SLEEP_MS)

    def _give_up(self, up, n):
        """A retry during an outage: stop at the first failed connect, or after PROBE_MS."""
        if up >= PROBE_MS:
            return True
        try:
            return n.link.status().get("failures", 0) > 0
        except Exception:  # noqa: BLE001 - no status to read: wait for the probe time
            return False

    def save(self, synced, announced, synced_at=None):
        """The wake's facts to RTC memory; `synced_at` Unix seconds of the last NTP sync."""
        m = self.meta
        m["synced"] = synced
        if synced_at is not None:
            m["ts"] = synced_at
        if announced:
            m["disc"] = True
        if self.net:
            if self.seen_at is not None:
                m["nf"] = 0
                m["skip"] = 0
            else:
                after = self.cfg["outage_after"]
                nf = m.get("nf", 0) + 1
                m["nf"] = nf if nf < after + _MAX_DOUBLINGS else after + _MAX_DOUBLINGS
                m["skip"] = skips(m["nf"], after, most_skips(self.cfg))
        self._write()

    def _write(self):
        self.board.rtc_memory(json.dumps({"m": _MAGIC, "x": self.meta}).encode())
