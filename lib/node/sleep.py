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
