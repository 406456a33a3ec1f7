"""Sensors in the node's loop: start, read after conversion_ms, calibrate and filter, then hand
the reading to delivery; health and per-sensor availability.

    sensing = Sensing(cfg["sensors"], board, clock, delivery, log, timekeeper)
    sensing.step(now, hold=False)        # once per loop step
"""

from node.filters import Chain, recompute_rh
from node.payload import fmt

FAIL_LIMIT = 2  # consecutive failed reads before a sensor is marked offline


class SensorRT:
    """One configured sensor at run time: driver, chains, schedule, health."""

    def __init__(self, scfg, now):
        self.cfg = scfg
        self.name = scfg["name"]
        self.drv = None
        self.chains = {}
        for qn in scfg["quantities"]:
            q = scfg["quantities"][qn]
            if q.get("publish", True):
                self.chains[qn] = Chain(q)
        self.interval_ms = scfg["interval"] * 1000
        self.due = now
        self.ready = None  # ticks_ms when a started conversion can be read
        self.errors = 0
        self.consec = 0
        self.online = None  # unknown until the first read
        self.last_error = None
        self.reads = 0


class Sensing:
    def __init__(self, sensors, board, clock, delivery, log, tk):
        self.board = board
        self.clock = clock
        self.delivery = delivery
        self.log = log
        self.tk = tk  # its uptime is the filters' clock (throttle, heartbeat)
        now = clock.ticks_ms()
        self.sensors = [SensorRT(s, now) for s in sensors]
        self.make_driver = self._driver  # replaceable: tests put a fake driver here

    def _driver(self, scfg):
        import sensors

        kw = dict(scfg.get("params") or {})
        if scfg.get("address") is not None:
            kw["address"] = scfg["address"]
        if scfg.get("rom"):
            kw["rom"] = scfg["rom"]
        return sensors.make(scfg["type"], self.board.bus_for(scfg), **kw)

    # ---- the loop ---------------------------------------------------------------------------
    def step(self, now, hold=False):
        """Start due conversions (unless hold) and read finished ones."""
        for s in self.sensors:
            self._step(s, now, hold)

    def _step(self, s, now, hold):
        c = self.clock
        if s.ready is None:
            if hold or c.ticks_diff(now, s.due) < 0:
                return
            s.due = c.ticks_add(s.due, s.interval_ms)
            if c.ticks_diff(s.due, now) <= 0:  # fell behind (long outage of the loop): resync
                s.due = c.ticks_add(now, s.interval_ms)
            try:
                if s.drv is None:
                    s.drv = self.make_driver(s.cfg)
                s.drv.start()
                # From now, not from the step's start: building the driver took bus time.
                s.ready = c.ticks_add(c.ticks_ms(), getattr(s.drv, "conversion_ms", 0) or 0)
            except Exception as e:  # noqa: BLE001 - any driver fault is a failed reading
                self._failed(s, e)
                return
        if c.ticks_diff(now, s.ready) >= 0:
            s.ready = None
            try:
                raw = s.drv.read()
            except Exception as e:  # noqa: BLE001
                self._failed(s, e)
                return
            self._ok(s, raw, now)

    def busy(self):
        """A conversion is under way (its reading is not in yet)."""
        # a plain loop: any() over a generator would allocate on every loop step
        for s in self.sensors:  # noqa: SIM110
            if s.ready is not None:
                return True
        return False

    def all_tried(self):
        """Every sensor was read (or failed) at least once."""
        for s in self.sensors:  # noqa: SIM110
            if not (s.reads or s.errors):
                return False
        return True

    def next_ms(self, now, most=50):
        """Milliseconds until a sensor needs the loop, at most `most`."""
        c = self.clock
        d = most
        for s in self.sensors:
            x = c.ticks_diff(s.ready if s.ready is not None else s.due, now)
            if x < d:
                d = x
        return d if d > 0 else 0

    def _set_online(self, s, on):
        if s.online != on:
            s.online = on
            self.delivery.availability(s.name, on)

    def republish(self):
        """Every known sensor availability again (after a connect: retained state)."""
        for s in self.sensors:
            if s.online is not None:
                self.delivery.availability(s.name, s.online)

    def _failed(self, s, e):
        s.errors += 1
        s.consec += 1
        s.last_error = repr(e)
        if isinstance(e, OSError):
            # A device that vanished must be re-probed (and re-identified) next time.
            s.drv = None
        if s.consec >= FAIL_LIMIT:
            self._set_online(s, False)
        if s.consec == 1:  # a change of state: say it once, with what is on the bus
            self.log("sensor %s: %r%s" % (s.name, e, self._found(s)))

    def _found(self, s):
        try:
            addrs = self.board.bus_for(s.cfg).scan()
        except Exception:  # noqa: BLE001 - not I2C, or the bus itself failed
            return ""
        return "; I2C bus has " + (" ".join("0x%02x" % a for a in addrs) or "nothing")

    def _ok(self, s, raw, now):
        s.consec = 0
        s.reads += 1
        qs = s.cfg["quantities"]
        if (
            "humidity" in raw
            and "temperature" in raw
            and "humidity" in s.chains
            and "temperature" in s.chains
            and qs["humidity"].get("recompute", True)
        ):
            cal = s.chains["temperature"].cal
            t = raw["temperature"]
            if not cal.is_identity() and t is not None and raw["humidity"] is not None:
                raw["humidity"] = recompute_rh(raw["humidity"], t, cal.apply(t))
        pairs = []
        now_s = self.tk.uptime_ms(now) / 1000  # not ticks: filters remember times for days
        for qn in s.chains:
            v = s.chains[qn].feed(raw.get(qn), now_s)
            if v is None:
                continue
            text = fmt(v, qs[qn]["decimals"])
            if text is not None:
                pairs.append((qs[qn]["topic"], text))
        self._set_online(s, True)
        if pairs:
            self.delivery.reading(s.name, pairs, now, s.interval_ms)

    # ---- for commands ---------------------------------------------------------------------------
    def find(self, name):
        for s in self.sensors:
            if s.name == name:
                return s
        return None

    def read_now(self, now):
        for s in self.sensors:
            s.due = now

    def set_interval(self, sec, name, now):
        """New interval for one sensor (name) or all (None), starting with a reading now."""
        for s in self.sensors:
            if name in (None, s.name):
                s.interval_ms = sec * 1000
                s.due = now
