"""Sensors in the node's loop: start, read after conversion_ms, calibrate and filter, publish
or spool; health and per-sensor availability. Functions of the Node (kept apart so each module
compiles in a small heap).

    from node import sensing
    sensing.sensor_step(node, s, now)
"""

from node.filters import Chain, recompute_rh
from node.payload import fmt, record

FAIL_LIMIT = 2  # consecutive failed reads before a sensor is marked offline
BOOT_GRACE_MS = 15000  # at boot, wait this long for the broker before the first reading


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
        self.latest = {}  # sub -> formatted text of the last good value


def sensor_step(n, s, now):
    c = n.clock
    if s.ready is None:
        if c.ticks_diff(now, s.due) < 0:
            return
        if (
            not n.sleeper
            and not n._connected_once
            and n.started
            and c.ticks_diff(now, n.t_boot) < BOOT_GRACE_MS
        ):
            return  # the first readings of a boot go live, not to the backlog
        s.due = c.ticks_add(s.due, s.interval_ms)
        if c.ticks_diff(s.due, now) <= 0:  # fell behind (long outage of the loop): resync
            s.due = c.ticks_add(now, s.interval_ms)
        try:
            if s.drv is None:
                s.drv = n._make_driver(s.cfg)
            s.drv.start()
            # From now, not from the step's start: building the driver took bus time.
            s.ready = c.ticks_add(c.ticks_ms(), getattr(s.drv, "conversion_ms", 0) or 0)
        except Exception as e:  # noqa: BLE001 - any driver fault is a failed reading
            sensor_failed(n, s, e)
            return
    if s.ready is not None and c.ticks_diff(now, s.ready) >= 0:
        s.ready = None
        try:
            raw = s.drv.read()
        except Exception as e:  # noqa: BLE001
            sensor_failed(n, s, e)
            return
        sensor_ok(n, s, raw, now)


def make_driver(n, scfg):
    import sensors

    kw = dict(scfg.get("params") or {})
    if scfg.get("address") is not None:
        kw["address"] = scfg["address"]
    if scfg.get("rom"):
        kw["rom"] = scfg["rom"]
    return sensors.make(scfg["type"], n.board.bus_for(scfg), **kw)


def set_sensor_online(n, s, on):
    if s.online != on:
        s.online = on
        if n.online():
            n._pub(n.topics.sensor_status(s.name), "online" if on else "offline", True, 1)


def sensor_failed(n, s, e):
    s.errors += 1
    s.consec += 1
    s.last_error = repr(e)
    if isinstance(e, OSError):
        # A device that vanished must be re-probed (and re-identified) next time.
        s.drv = None
    if s.consec >= FAIL_LIMIT:
        set_sensor_online(n, s, False)
    n._log("sensor %s: %r" % (s.name, e))


def sensor_ok(n, s, raw, now):
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
    now_s = n.clock.ticks_diff(now, n.t_boot) / 1000
    for qn in s.chains:
        ch = s.chains[qn]
        v = ch.feed(raw.get(qn), now_s)
        if v is None:
            continue
        text = fmt(v, qs[qn]["decimals"])
        if text is None:
            continue
        sub = qs[qn]["topic"]
        s.latest[sub] = text
        pairs.append((sub, text))
    set_sensor_online(n, s, True)
    if pairs:
        emit(n, s, pairs, now)


def emit(n, s, pairs, now):
    t = n.time.unix()
    if n.online() and not (n.sleeper and n._shutdown):
        refused = False
        for sub, text in pairs:
            if not n._pub(n.topics.value(sub), text):
                refused = True  # the wrapper's outbox is full: keep the reading instead
        if n.cfg["json"]:
            n._json_due = True  # one document per step, with every sensor's values
            n._json_t = t  # stamped with the measurement time, not the time it goes out
        if not refused:
            return
        rec = record(pairs, t, s.name, None if t is not None else uptime_s(n, now))
        if n.spool is not None:
            n.spool.put(rec)
        return
    # Offline from here on: this reading goes to the spool (backlog), so a document still
    # pending from before the outage must not go out later carrying this value as live.
    n._json_due = False
    if n.sleeper and not n._connected_once and len(n._wake) < 16:
        # Taken this wake before the network is up: published live once connected.
        n._wake.append((s.name, pairs, t, uptime_s(n, now)))
    else:
        rec = record(pairs, t, s.name, None if t is not None else uptime_s(n, now))
        if n.rtc is not None:
            n.rtc.add(rec)
            if len(n.rtc.recs) > 32 and n.spool is not None:
                n.spool.put(n.rtc.recs.pop(0))  # RTC memory is small: bound it
        elif n.spool is not None:
            n.spool.put(rec)


def converting(n):
    # a plain loop: any() over a generator would allocate on every loop step
    for s in n.sensors:  # noqa: SIM110
        if s.ready is not None:
            return True
    return False


def publish_json(n, now):
    t = n._json_t
    allv = []
    for x in n.sensors:
        for k in x.latest:
            allv.append((k, x.latest[k]))
    n._pub(n.topics.json, record(allv, t, None, None if t else uptime_s(n, now)))


def uptime_s(n, now):
    return n.clock.ticks_diff(now, n.t_boot) // 1000
