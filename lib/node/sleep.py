"""Deep sleep: the policy of a battery node, loaded only when deep sleep is configured.

A battery node wakes, reads its sensors before WiFi (the radio heats the board and costs
power), connects, delivers, marks itself `sleeping` and goes back to sleep. The awake cap is
absolute: the node sleeps when it is reached, broker or not. Readings not delivered are in the
durable store (node.delivery), not here; RTC memory (kept across deep sleep, lost on power
loss) only carries two facts from one wake to the next: the clock was synced, and Home
Assistant discovery was sent.

    sl = Sleeper(cfg["deep_sleep"], board, clock, t_reset)
    act = sl.step(now, node)      # None, "network", or ("sleep", ms)
"""

import json

SLEEP_GRACE_MS = 600  # after connecting, time for a retained stay-awake to arrive
CAP_MARGIN_MS = 200  # start going to sleep this much before the cap: shutting down takes a step
_MAGIC = "N2"


class Sleeper:
    def __init__(self, cfg, board, clock, t_reset):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.t_reset = t_reset
        self.awake = False  # a retained stay-awake switch is on
        self.reads_done = False
        self.seen_at = None  # ticks_ms of the connect of this wake
        self.meta = {}
        raw = board.rtc_memory()
        if raw:
            try:
                d = json.loads(raw)
                if isinstance(d, dict) and d.get("m") == _MAGIC:
                    self.meta = d.get("x") or {}
            except (ValueError, TypeError):
                pass  # garbage after power-on: start empty

    def set_awake(self, msg):
        self.awake = msg.strip().lower() in (b"1", b"on", b"true", b"stay")

    def connected(self, now):
        self.seen_at = now

    def step(self, now, n):
        """Reads first, then the network, then sleep once everything is delivered."""
        up = self.clock.ticks_diff(now, self.t_reset)  # the cap counts booting too
        cap = self.cfg["awake_cap"] * 1000
        if not self.reads_done:
            if n.sensing.all_tried() or up >= cap // 2:
                self.reads_done = True
                return "network"
            return None
        if self.awake:
            return None
        if up < cap - CAP_MARGIN_MS:
            if self.seen_at is None or not n.link.online():
                return None
            if self.clock.ticks_diff(now, self.seen_at) < SLEEP_GRACE_MS or n.busy():
                return None
        # Done, or the hard cap: broker or not, the battery decides.
        iv = self.cfg["interval"] * 1000
        return ("sleep", iv - up if iv - up > 1000 else 1000)

    def save(self, synced, announced):
        self.meta["synced"] = synced
        if announced:
            self.meta["disc"] = True
        self.board.rtc_memory(json.dumps({"m": _MAGIC, "x": self.meta}).encode())
