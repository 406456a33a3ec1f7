# Nothing stale published as live: a plain value (no time in it) goes out within its interval
# or goes to the backlog with its measurement time.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node_world import World, doc

TIMEOUT = 120
B = "Erdgeschoss/Wohnzimmer/"


def _numbered(w, drop_at=None):
    # reading k (from now) says 30+k degrees; the broker goes away as reading drop_at is sent
    calls = [0]

    def values():
        calls[0] += 1
        if calls[0] == drop_at:
            w.mq.up = False
        v = dict(w.values)
        v["temperature"] = 30.0 + calls[0]
        return v

    w.drv.values = values


def test_reading_caught_by_a_broker_drop_goes_to_backlog_not_late_live():
    w = World()
    w.run(100)
    _numbered(w, 1)
    w.run(10000)  # reading "31.0" handed to the wrapper, then the broker is gone
    assert w.mq.topics(B + "Temp") == ["21.5"]
    w.run(15000)
    w.mq.up = True
    w.run(1000)
    assert "31.0" not in w.mq.topics(B + "Temp")  # never later as if current
    recs = [json.loads(r) for r in w.mq.topics(B + "backlog")]
    assert recs and recs[0]["Temp"] == 31.0, recs
    assert w.clock.epoch + 10 <= recs[0]["t"] <= w.clock.epoch + 11, recs[0]
    assert w.node.delivery.late == 1


def test_reading_stuck_in_the_outbox_past_its_interval_goes_to_backlog():
    w = World()
    w.run(100)
    _numbered(w)
    w.mq.stall = True  # connected, nothing goes out
    w.run(10500)  # "31.0" queued at ~10 s; its interval ends at ~20 s
    w.run(10000)  # "32.0" queued at ~20 s
    w.mq.stall = False
    w.run(1000)
    assert w.mq.topics(B + "Temp") == ["21.5", "32.0"]
    recs = [json.loads(r) for r in w.mq.topics(B + "backlog")]
    assert [r["Temp"] for r in recs] == [31.0], recs


def test_outbox_withdraw_takes_back_only_a_queued_message():
    from mqtt.outbox import Outbox

    ob = Outbox(10, 4096)
    ob.put("B/Temp", "21.5", False, 1)
    ob.put("B/Hum", "45.3", False, 1)
    n = ob.bytes
    assert ob.withdraw("B/Temp", "21.5") is True
    assert ob.withdraw("B/Temp", "21.5") is False  # only one was queued
    assert ob.withdraw("B/Hum", "45.0") is False  # same topic, other value: not ours
    assert len(ob) == 1 and ob.first()[0] == "B/Hum" and ob.bytes < n


# ---- the virtual soak ----------------------------------------------------------------------
# The real node (startup.build, lib/node, the durable store) on the fake board and wrapper of
# node_world, with a 30-bit virtual clock stepped STEP_MS at a time. Every reading a fake
# driver gives is numbered and its number is coded into its values, so each message that
# reaches the "broker" names the reading it carries: published, duplicate, stale (a live value
# older than its sensor's interval) or a value no reading had (wrong). Outages, faults and
# reboots follow a fixed plan (plan()); at the end the broker stays up until the backlog is
# drained, and every reading taken and never delivered counts as lost.
MIN = 60000
HOUR = 60 * MIN
DAY_MS = 24 * HOUR
STEP_MS = 5000  # virtual time per loop step: readings are 60 s and 120 s apart
# sensor 0 (bme280, 60 s): Press = 300.0 + (k % 8000) / 10, Temp = -40.0 + (k // 8000) / 10
# sensor 1 (dht22, 120 s): Hum2 = (k % 1000) / 10, Temp2 = -40.0 + (k // 1000) / 10
MODS = (8000, 1000)
INTERVALS = (60000, 120000)


def soak_doc():
    return doc(
        interval=60,
        sensors=[
            {"type": "bme280", "address": "0x76", "quantities": {"humidity": {"decimals": 1}}},
            {
                "type": "dht22",
                "pin": 4,
                "interval": 120,
                "quantities": {
                    "temperature": {"topic": "Temp2"},
                    "humidity": {"topic": "Hum2", "decimals": 1},
                },
            },
        ],
        time={"ntp": "pool.ntp.org"},
        spool={"max_bytes": 1048576, "ram": 32},
    )


class Rand:
    # a small LCG: the same plan on every interpreter
    def __init__(self, seed):
        self.s = seed

    def below(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n


def plan(days, seed=12):
    """[(start ms, end ms, kind)] of the scenario: kinds broker, wifi, vanish (sensor 0 gone),
    dead1 (sensor 1 dead), ntp (NTP unreachable); and reboot times."""
    r = Rand(seed)
    ev = [(0, 2 * DAY_MS if days > 4 else HOUR, "ntp")]
    t = 3 * HOUR
    while t < days * DAY_MS:
        # a broker outage from minutes to a day, every one to three days
        ln = (2 * MIN, 20 * MIN, 3 * HOUR, 9 * HOUR, DAY_MS)[r.below(5)]
        ev.append((t, t + ln, "broker"))
        t += ln + DAY_MS + r.below(2 * DAY_MS)
    t = 5 * HOUR
    while t < days * DAY_MS:
        ev.append((t, t + 10000 + r.below(30 * MIN), "wifi"))
        t += 6 * HOUR + r.below(DAY_MS)
    t = 9 * HOUR
    while t < days * DAY_MS:
        ev.append((t, t + HOUR + r.below(5 * HOUR), "vanish"))
        t += 2 * DAY_MS + r.below(4 * DAY_MS)
    if days >= 30:
        ev.append((20 * DAY_MS, 27 * DAY_MS, "dead1"))  # the DHT22 dead for a week
        ev.append((30 * DAY_MS, 33 * DAY_MS, "ntp"))
    else:
        ev.append((DAY_MS // 2, DAY_MS // 2 + 6 * HOUR, "dead1"))
    reboots = []
    t = DAY_MS + 7 * HOUR
    while t < days * DAY_MS:
        reboots.append(t)
        t += 4 * DAY_MS + r.below(3 * DAY_MS)
    return ev, reboots


class SoakSensor:
    def __init__(self, soak, i, quantities):
        self.soak = soak
        self.i = i
        self.QUANTITIES = quantities
        self.conversion_ms = 10
        self.k = 0  # readings given
        self.noise_at = -DAY_MS  # virtual ms of the last CRC error
        self.at = bytearray(4 * MODS[i])  # virtual second of reading k, at k % MODS[i]

    def _fault(self):
        s = self.soak
        if s.active("vanish" if self.i == 0 else "dead1"):
            raise OSError(19)  # ENODEV: gone from the bus
        if s.rand.below(50) == 0:
            self.noise_at = s.world.clock.ms
            raise ValueError("CRC mismatch")  # noise: one bad frame in 50

    def start(self):
        self._fault()

    def read(self):
        self._fault()
        k = self.k
        self.k += 1
        m = MODS[self.i]
        sec = self.soak.world.clock.ms // 1000
        j = 4 * (k % m)
        self.at[j : j + 4] = sec.to_bytes(4, "little")
        if self.i == 0:
            return {
                "temperature": -40.0 + (k // m) / 10,
                "humidity": 50.0,
                "pressure": 300.0 + (k % m) / 10,
            }
        return {"temperature": -40.0 + (k // m) / 10, "humidity": (k % m) / 10}

    def time_of(self, k):
        j = 4 * (k % MODS[self.i])
        return int.from_bytes(self.at[j : j + 4], "little")


class NTP:
    def __init__(self, soak):
        self.soak = soak
        self.host = None
        self.calls = 0

    def settime(self):
        self.calls += 1
        if self.soak.active("ntp") or not self.soak.world.board.w.up:
            raise OSError(110)  # ETIMEDOUT


def _tenths(text):
    return int(round(float(text) * 10))


class Soak:
    def __init__(self, days, start_ms=(1 << 30) - 2 * HOUR, seed=12):
        import sys

        self.days = days
        self.rand = Rand(seed + 1)
        self.events, self.reboots = plan(days, seed)
        self.ntp = NTP(self)
        sys.modules["ntptime"] = self.ntp
        self.t0 = start_ms
        self.world = None
        self.sensors = None
        self.got = [bytearray(days * 86400 // 60 + 64), bytearray(days * 86400 // 120 + 64)]
        self.published = self.duplicates = self.stale = self.wrong = self.wrong_time = 0
        self.live = self.backlog = 0
        self.boots = 0
        self.max_age = 0
        self.errors = [0, 0]  # sensor errors of the boots before this one
        self.status = {}  # sensor name -> last availability the broker got
        self.diag_at = 0
        self.audits = self.stuck = self.availability_wrong = 0
        self.heap = []  # allocated heap after a collection, once a simulated day

    def active(self, kind, for_ms=0):
        """The fault `kind` is on (and has been for at least for_ms)."""
        t = self.world.clock.ms - self.t0
        for a, b, k in self.events:  # noqa: SIM110 - no generator per call in the hot loop
            if k == kind and a + for_ms <= t < b:
                return True
        return False

    def quiet(self, kind, for_ms):
        """The fault `kind` has been off for at least for_ms."""
        t = self.world.clock.ms - self.t0
        for a, b, k in self.events:  # noqa: SIM110
            if k == kind and a <= t < b + for_ms:
                return False
        return True

    def audit(self):
        """Hourly, with the broker up for 20 minutes: what the node says must be true now."""
        now = self.world.clock.ms
        if not (self.quiet("broker", 20 * MIN) and self.quiet("wifi", 20 * MIN)):
            return
        self.audits += 1
        if now - self.diag_at > 2 * 600000:  # diag.interval 600 s
            self.stuck += 1
        if self.quiet("ntp", 20 * MIN) and not self.world.node.time.synced:
            self.stuck += 1
        for i, kind, name in ((0, "vanish", "bme280"), (1, "dead1", "dht22")):
            st = self.status.get(name)
            if self.active(kind, 10 * MIN):
                want = "offline"
            elif self.quiet(kind, 10 * MIN) and now - self.sensors[i].noise_at > 10 * MIN:
                want = "online"
            else:
                continue
            if st != want:
                self.availability_wrong += 1

    def boot(self):
        self.boots += 1
        if self.world is None:
            self.world = World(soak_doc(), start_ms=self.t0, synced=False)
            self.sensors = (
                SoakSensor(self, 0, ("temperature", "humidity", "pressure")),
                SoakSensor(self, 1, ("temperature", "humidity")),
            )
        else:
            for i, s in enumerate(self.world.node.sensing.sensors):
                self.errors[i] += s.errors
            self.world.build()
        self.world.node.sensing.make_driver = self._driver
        self._net()

    def _driver(self, scfg):
        return self.sensors[0 if scfg["type"] == "bme280" else 1]

    def _net(self):
        w = self.world
        wifi = not self.active("wifi")
        w.board.w.up = wifi
        w.broker_up = wifi and not self.active("broker")
        if w.mq is not None:
            w.mq.up = w.broker_up

    # ---- checking what the broker got ----------------------------------------------------------
    def _mark(self, i, k, now_s, live):
        s = self.sensors[i]
        if k < 0 or k >= s.k:
            self.wrong += 1
            return
        g = self.got[i]
        if g[k]:
            self.duplicates += 1
        else:
            g[k] = 1
            self.published += 1
        if live:
            age = now_s - s.time_of(k)
            if age > self.max_age:
                self.max_age = age
            if age * 1000 > INTERVALS[i]:
                self.stale += 1

    def _nearest(self, i, lo):
        # the newest reading with this low part (a live value names only that)
        m = MODS[i]
        top = self.sensors[i].k - 1
        return top - ((top - lo) % m)

    def _record(self, r, now_s):
        for i, lo_key, hi_key in ((0, "Press", "Temp"), (1, "Hum2", "Temp2")):
            if lo_key not in r:
                continue
            lo = _tenths(r[lo_key]) - (3000 if i == 0 else 0)
            if hi_key in r:
                k = (_tenths(r[hi_key]) + 400) * MODS[i] + lo
            else:
                k = self._nearest(i, lo)
            self._mark(i, k, now_s, False)
            t = r.get("t")
            if t is not None and 0 <= k < self.sensors[i].k:
                when = self.world.clock.epoch + self.sensors[i].time_of(k)
                if abs(t - when) > 1:
                    self.wrong_time += 1

    def check(self):
        mq = self.world.mq
        if mq is None or not mq.sent:
            return
        now_s = self.world.clock.ms // 1000
        for m in mq.sent:
            topic, payload = m[0], m[1]
            sub = topic[len(B) :]
            if sub == "Press":
                self.live += 1
                self._mark(0, self._nearest(0, _tenths(payload) - 3000), now_s, True)
            elif sub == "Hum2":
                self.live += 1
                self._mark(1, self._nearest(1, _tenths(payload)), now_s, True)
            elif sub.startswith("status/"):
                self.status[sub[7:]] = payload
            elif sub == "diag":
                self.diag_at = self.world.clock.ms
            elif sub == "backlog":
                self.backlog += 1
                self._record(json.loads(payload), now_s)
        del mq.sent[:]

    # ---- the run -------------------------------------------------------------------------------
    def step(self):
        w = self.world
        try:
            w.node.step()
        except SystemExit:  # board.reset(): the node saved its state; boot again
            self.check()
            self.boot()
            return
        w.clock.advance(STEP_MS)
        self._net()
        self.check()

    def run(self, heap=None):
        import gc
        import time

        wall = time.time()
        self.boot()
        end = self.t0 + self.days * DAY_MS
        ri = 0
        day = 1
        hour = 1
        w = self.world
        while w.clock.ms < end:
            if ri < len(self.reboots) and w.clock.ms - self.t0 >= self.reboots[ri]:
                ri += 1
                w.node.shutdown("reset", w.clock.ticks_ms())  # a commanded reboot
            self.step()
            w = self.world
            if w.clock.ms - self.t0 >= hour * HOUR:
                hour += 1
                self.audit()
            if w.clock.ms - self.t0 >= day * DAY_MS:
                day += 1
                gc.collect()
                self.heap.append(gc.mem_alloc())
        # drain: everything up, no faults, until the backlog is empty (at most two days)
        self.events = []
        stop = w.clock.ms + 2 * DAY_MS
        while w.clock.ms < stop and (
            w.node.delivery.pending() or not w.node.link.idle() or self.sensors[0].k == 0
        ):
            self.step()
            w = self.world
        for _ in range(4):
            self.step()
        taken = self.sensors[0].k + self.sensors[1].k
        d = w.node.delivery
        h = self.heap[1:] if len(self.heap) > 2 else self.heap
        return {
            "days": self.days,
            "taken": taken,
            "published": self.published,
            "live": self.live,
            "backlog_msgs": self.backlog,
            "stale": self.stale,
            "lost": taken - self.published,
            "duplicates": self.duplicates,
            "wrong": self.wrong,
            "wrong_time": self.wrong_time,
            "max_live_age_s": self.max_age,
            "late_to_backlog": getattr(d, "late", None),
            "store_dropped": d.dropped(),
            "sensor_errors": [
                self.errors[i] + s.errors for i, s in enumerate(w.node.sensing.sensors)
            ],
            "audits": self.audits,
            "availability_wrong": self.availability_wrong,
            "timers_stuck": self.stuck,
            "boots": self.boots,
            "ntp_calls": self.ntp.calls,
            "synced": w.node.time.synced,
            # from the end of day 1 (everything loaded, the first outage seen) to the last day
            "heap_drift_kb": (h[-1] - h[0]) / 1024 if len(h) > 1 else None,
            "heap_spread_kb": (max(h) - min(h)) / 1024 if h else None,
            "wall_s": time.time() - wall,
        }


def test_soak_days_with_outages_faults_reboots_and_a_ticks_wrap():
    r = Soak(4).run()
    print(r)
    assert r["taken"] > 4 * 1440 * 0.8, r
    assert r["stale"] == 0 and r["lost"] == 0 and r["wrong"] == 0 and r["wrong_time"] == 0, r
    assert r["boots"] >= 2 and r["synced"], r
    assert r["availability_wrong"] == 0 and r["timers_stuck"] == 0 and r["audits"] > 50, r
