"""Deep-sleep helpers: readings kept in RTC memory between wakes, and the awake budget.

A battery node wakes, reads its sensors before WiFi, connects, flushes, marks itself
`sleeping` and goes back to sleep. Readings that could not be delivered stay in RTC memory
(2 KB on the ESP32, kept across deep sleep, lost on power loss); when they would not fit, the
oldest go to the flash spool in one write. The awake cap is absolute: the node sleeps when it
is reached, broker or not.

    st = RtcStore(board)             # loads what the last wake left
    st.add('{"t":...,"Temp":21.5}')  # a reading not yet delivered
    st.save(spool)                   # before deepsleep: to RTC memory (overflow to spool)
"""

import json

SLEEP_GRACE_MS = 600  # after connecting, time for a retained stay-awake to arrive
CAP_MARGIN_MS = 200  # start going to sleep this much before the cap: shutting down takes a step

_MAGIC = "N1"
RTC_BYTES = 1800  # of the ESP32's 2048: leave room for the header and the runtime


class RtcStore:
    def __init__(self, board, limit=RTC_BYTES):
        self.board = board
        self.limit = limit
        self.recs = []
        self.meta = {}
        raw = board.rtc_memory()
        if raw:
            try:
                d = json.loads(raw)
                if isinstance(d, dict) and d.get("m") == _MAGIC:
                    self.recs = list(d.get("r", []))
                    self.meta = d.get("x", {}) or {}
            except (ValueError, TypeError):
                pass  # garbage after power-on: start empty

    def add(self, rec):
        self.recs.append(rec if isinstance(rec, str) else rec.decode())

    def take(self):
        r = self.recs
        self.recs = []
        return r

    def _encode(self):
        return json.dumps({"m": _MAGIC, "r": self.recs, "x": self.meta})

    def save(self, spool=None):
        """Write to RTC memory; what does not fit goes (oldest first) to the spool."""
        data = self._encode()
        if len(data) > self.limit and spool is not None:
            while self.recs and len(data) > self.limit // 2:
                spool.put(self.recs.pop(0))
                data = self._encode()
            spool.flush()
        while len(data) > self.limit and self.recs:
            self.recs.pop(0)  # no spool: bounded anyway
            self.meta["dropped"] = self.meta.get("dropped", 0) + 1
            data = self._encode()
        self.board.rtc_memory(data.encode())


def sleeper_step(n, now):
    """The deep-sleep policy, once per loop step: reads first, then network, then sleep."""
    c = n.clock
    # from the reset (main.py's first line): the cap includes booting and importing,
    # as the battery sees it
    up = c.ticks_diff(now, n.t_reset)
    cap = n.sleep_cfg["awake_cap"] * 1000
    if not n._sleep_reads_done:
        if all(s.reads or s.errors for s in n.sensors) or up >= cap // 2:
            n._sleep_reads_done = True
            n._start_network()
        return
    if up >= cap - CAP_MARGIN_MS and not n._awake:
        # Hard cap: broker or not, the battery decides.
        go_sleep(n, now, up)
        return
    if n._awake:
        return
    if not n.online() or n._awake_seen_at is None:
        return
    if c.ticks_diff(now, n._awake_seen_at) < SLEEP_GRACE_MS:
        return
    if n.announcer is not None and n.announcer.pending():
        return
    if n._inbox or (n.rtc and n.rtc.recs) or (n.spool and n.spool.depth()) or not n.mqtt.idle():
        return
    go_sleep(n, now, up)


def go_sleep(n, now, up):
    """Sleep for what is left of the interval (at least 1 s)."""
    iv = n.sleep_cfg["interval"] * 1000
    ms = iv - up if iv - up > 1000 else 1000
    n.shutdown("sleep", now, ms)
