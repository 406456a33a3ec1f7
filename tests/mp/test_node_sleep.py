# Battery wakes on a fast (fake) clock: conversions overlap WiFi association, the outage
# schedule backs off and recovers with every reading kept and timestamped, NTP on a schedule.
import node_heap  # skips from source in a small heap (see node_heap.py)
import json
import sys

import node_fakes as F
from node import startup
from node.sleep import PROBE_MS, network_wakes, skips
from node_world import doc, tmp

TIMEOUT = 60
BASE = "Erdgeschoss/Wohnzimmer"
ASSOC_MS = 1500  # WiFi association, as the simulated board models it
CONV_MS = 750  # a DS18B20 at 12 bit


class SlowWLAN(F.WLAN):
    """Associates ASSOC_MS after connect(), as a real station does."""

    def __init__(self, clock, log):
        super().__init__()
        self.clock = clock
        self.log = log
        self.at = None

    def connect(self, ssid, pw):
        self.at = self.clock.ms
        self.log.append(("wifi", self.clock.ms))

    def isconnected(self):
        return self.at is not None and self.clock.ms - self.at >= ASSOC_MS


class Board(F.Board):
    def __init__(self):
        super().__init__()
        self.woke = False

    def woke_from_deepsleep(self):
        return self.woke


class MQTT(F.MQTT):
    """Connects only over associated WiFi; a refused connect counts as a failure."""

    broker_up = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.up = MQTT.broker_up
        self.failures = 0

    def step(self):
        if not self.kw["wlan"].isconnected():
            return
        if not self.up:
            self.failures += 1
        super().step()

    def status(self):
        return {"reconnects": 0, "drops": 0, "failures": self.failures}


class Sensor(F.Sensor):
    def __init__(self, clock, log, values):
        super().__init__(("temperature",), values, CONV_MS)
        self.clock = clock
        self.log = log

    def start(self):
        super().start()
        self.log.append(("start", self.clock.ms))

    def read(self):
        self.log.append(("read", self.clock.ms))
        return super().read()


class Wakes:
    """One battery node woken again and again on the same board (RTC memory) and files."""

    def __init__(self, d):
        tmp()
        with open("config.json", "w") as f:
            json.dump(d, f)
        self.clock = F.Clock()
        self.board = Board()
        self.log = []
        self.temp = 20.0
        self.drv = Sensor(self.clock, self.log, lambda: {"temperature": self.temp})
        self.sent = []  # everything every wake's MQTT delivered to the broker
        self.net = []  # per wake: the network was brought up
        self.awake = []  # per wake: ms from boot to deep sleep

    def wake(self, limit_ms=60000, cls=None):
        w = self
        w.log.clear()
        mq = []

        def factory(*a, **kw):
            mq.append((cls or MQTT)(*a, **kw))
            return mq[-1]

        w.board.w = SlowWLAN(w.clock, w.log)
        t0 = w.clock.ms
        node, _, _ = startup.build(lambda name: w.board, w.clock)
        node.link.factory = factory
        node.sensing.make_driver = lambda scfg: w.drv
        if not node.time.synced:
            node.time.mark_synced()  # the first power-on: as if NTP had answered
        w.node = node
        node.start()
        slept = False
        try:
            while w.clock.ms - t0 < limit_ms:
                node.step()
                w.clock.advance(10)
        except SystemExit:
            slept = True
        w.net.append(bool(mq))
        w.awake.append(w.clock.ms - t0)
        if mq:
            w.sent.extend(mq[0].sent)
        assert slept, "no deep sleep within %d ms" % limit_ms
        w.clock.advance(w.board.sleeps[-1])  # the deep sleep itself
        w.board.woke = True
        w.temp += 0.5
        return mq[0] if mq else None

    def topics(self, t):
        return [m[1] for m in self.sent if m[0] == t]


def sleep_doc(**ds):
    c = {"enabled": True, "interval": 300, "awake_cap": 20}
    c.update(ds)
    return doc(interval=300, deep_sleep=c, sensors=[{"type": "ds18b20", "pin": 4}])


def test_conversions_overlap_wifi_association():
    w = Wakes(sleep_doc())
    w.wake()
    w.wake()  # a wake from deep sleep
    kinds = [k for k, _ in w.log]
    t = dict(w.log)
    # every conversion is started first, then WiFi, and the reading is in before association
    assert kinds[:3] == ["start", "wifi", "read"], w.log
    assert t["read"] - t["start"] >= CONV_MS and t["read"] < t["wifi"] + ASSOC_MS
    # awake: association plus a few loop steps, not conversion + association (2250 ms)
    assert ASSOC_MS <= w.awake[-1] <= ASSOC_MS + 150, w.awake
    assert w.topics(BASE + "/Temp") == ["20.0", "20.5"]
    assert w.topics(BASE + "/status")[-1] == "sleeping"


def test_outage_schedule_backs_off_and_recovers_with_every_reading_timestamped():
    w = Wakes(sleep_doc(outage_after=3, retry_max=2400))  # at most 7 wakes skipped in a row
    w.wake()
    MQTT.broker_up = False
    n_down = 40
    for _ in range(n_down):
        w.wake()
    down = w.net[1:]
    # three failed wakes, then skip 1, 2, 4, then 7 (the bound) between retries
    tried = [i for i, on in enumerate(down) if on]
    assert tried[:8] == [0, 1, 2, 4, 7, 12, 20, 28], tried
    assert tried == [0, 1, 2, 4, 7, 12, 20, 28, 36], tried
    assert len(tried) == network_wakes(n_down, w.node.cfg["deep_sleep"])
    aw = w.awake[1:]
    assert aw[0] >= 19000  # the first failed wake waits out the cap (a short glitch?)
    assert all(aw[i] <= ASSOC_MS + 100 for i in tried[1:]), aw  # retries stop at a refusal
    assert all(aw[i] <= CONV_MS + 100 for i in range(n_down) if i not in tried), aw
    # broker back: the next retry gets through and sends the whole backlog, then every wake
    # uses the network again
    MQTT.broker_up = True
    for _ in range(10):
        w.wake()
    assert w.net[-10:] == [False] * 4 + [True] * 6, w.net[-10:]
    back = [json.loads(p) for p in w.topics(BASE + "/backlog")]
    # the outage's readings and the four skipped wakes after
    assert len(back) == n_down + 4, (len(back), back[:2], back[-2:])
    assert all(isinstance(b["t"], int) for b in back)  # each with its measurement time
    assert len({b["t"] for b in back}) == len(back)
    assert [b["Temp"] for b in back] == [20.5 + 0.5 * i for i in range(len(back))]
    assert w.awake[-1] <= ASSOC_MS + 150  # back to short wakes once the backlog is out


def test_retry_without_any_refusal_gives_up_after_the_probe_time():
    w = Wakes(sleep_doc(outage_after=1))
    w.wake()
    MQTT.broker_up = False
    w.wake()  # a full failed wake (cap)
    w.wake()  # skipped
    F_status = MQTT.status
    MQTT.status = lambda self: {}  # a wrapper that says nothing: the probe time decides
    try:
        w.wake()
    finally:
        MQTT.status = F_status
    assert w.net[-3:] == [True, False, True]
    assert PROBE_MS <= w.awake[-1] <= PROBE_MS + 50


class NTP:
    def __init__(self):
        self.calls = 0

    def settime(self):
        self.calls += 1


def test_no_ntp_on_every_wake_only_when_the_resync_is_due():
    ntp = sys.modules["ntptime"] = NTP()
    d = sleep_doc()
    d["time"] = {"ntp": "pool.ntp.org", "resync": 3600}
    w = Wakes(d)
    for _ in range(14):
        w.wake()
    # a sync on the power-on wake, none while the RTC keeps the time, one after 3600 s
    assert ntp.calls == 2, ntp.calls
    meta = json.loads(w.board.rtc)["x"]
    assert meta["synced"] and isinstance(meta["ts"], int)


def test_no_skipping_without_a_clock_the_rtc_kept():
    w = Wakes(sleep_doc(outage_after=1))
    MQTT.broker_up = False
    w.wake()
    w.board.rtc = json.dumps({"m": "N2", "x": dict(json.loads(w.board.rtc)["x"], synced=False)})
    w.wake()
    assert w.net == [True, True]  # a skipped wake's readings would carry no time


def test_skip_schedule_is_bounded():
    assert [skips(n, 3, 6) for n in range(9)] == [0, 0, 0, 1, 2, 4, 6, 6, 6]
    assert skips(10**6, 1, 100) == 100  # no huge shift after months of failures
    assert skips(5, 3, 0) == 0


def test_config_checks_the_outage_keys():
    from node.config import check

    msgs, _ = check(doc(deep_sleep={"enabled": True, "outage_after": 0, "retry_max": 5}))
    assert "deep_sleep.outage_after: expected an integer 1..100, got 0" in msgs, msgs
    assert "deep_sleep.retry_max: expected an integer 10..604800, got 5" in msgs, msgs
    _, c = check(doc(deep_sleep=True))
    assert c["deep_sleep"]["outage_after"] == 3 and c["deep_sleep"]["retry_max"] == 1800
    # a deep-sleep node's spool holds a day's outage by default; a mains node keeps 32 KB
    assert c["spool"]["max_bytes"] == 262144
    assert check(doc())[1]["spool"]["max_bytes"] == 32768
    assert check(doc(deep_sleep=True, spool={"max_bytes": 4096}))[1]["spool"]["max_bytes"] == 4096


def test_a_skipped_wake_counts_even_if_it_never_reaches_sleep():
    w = Wakes(sleep_doc(outage_after=1, retry_max=2400))
    MQTT.broker_up = False
    for _ in range(3):  # failed, skipped, failed again: skip the next 2 wakes
        w.wake()
    assert json.loads(w.board.rtc)["x"]["skip"] == 2
    # a wake that crashes before sleeping (the watchdog resets it): RTC memory kept
    startup.build(lambda name: w.board, w.clock)
    assert json.loads(w.board.rtc)["x"]["skip"] == 1
    w.wake()
    assert w.net == [True, False, True, False] and json.loads(w.board.rtc)["x"]["skip"] == 0


RTT_MS = 40  # publish to PUBACK over WiFi to a LAN broker (the sim's loopback is faster)
WINDOW = 8  # QoS 1 messages in flight at once, as the robust wrapper's default max_inflight


class LatentMQTT(MQTT):
    """A broker RTT_MS away: WINDOW messages in flight, each acknowledged RTT_MS after it was
    written (the wrapper's holds() and idle() answer from that)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.inflight = []  # [ack due ms, message]

    def _now(self):
        return self.kw["clock"].ms

    def step(self):
        if not self.kw["wlan"].isconnected() or not self.up:
            super().step()
            return
        if not self.connected:
            self.connected = True
            if self.on_connect:
                self.on_connect(False)
        now = self._now()
        while self.inflight and self.inflight[0][0] <= now:
            self.sent.append(self.inflight.pop(0)[1])
        while self.queue and len(self.inflight) < WINDOW:
            self.inflight.append([now + RTT_MS, self.queue.pop(0)])

    def idle(self):
        return not self.queue and not self.inflight

    def holds(self, t, m):
        m = m if isinstance(m, str) else bytes(m).decode()
        return any(e[0] == t and e[1] == m for e in self.queue) or any(
            e[1][0] == t and e[1][1] == m for e in self.inflight
        )


def _day_of_backlog(w, n, t0):
    """n stored readings of the node's sensor, one every 300 s from Unix time t0, as skipped
    wakes leave them on flash."""
    from mqtt.store import Store
    from node.payload import record

    sp = w.node.cfg["spool"]
    st = Store(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"])
    for i in range(n):
        st.put(record([("Temp", "%d" % i)], t0 + 300 * i, "ds18b20"))
    st.flush()
    return st


def test_a_days_backlog_goes_out_in_the_first_wake_that_reaches_the_broker():
    # 1152 readings: the default scenario's four sensors for a day at one wake per 300 s
    node_heap.need(384, "the fake broker keeps a day of backlog messages: needs > 384K")
    n = 1152
    MQTT.broker_up = True
    w = Wakes(sleep_doc(awake_cap=10))
    w.wake()
    st = _day_of_backlog(w, n, 1763000000)
    assert st.depth() == n and st.dropped == 0  # the deep-sleep default spool holds the day
    mq = w.wake(cls=LatentMQTT)
    back = [json.loads(p) for p in w.topics(BASE + "/backlog")]
    # one wake, within the cap: every record once, oldest first, each with its own time
    assert len(back) == n, (len(back), w.awake)
    assert [b["t"] for b in back] == [1763000000 + 300 * i for i in range(n)]
    assert w.awake[-1] < 10000 - 200, w.awake
    assert mq.idle() and w.node.delivery.pending() == 0
    # the flash holds nothing more: committed only as acknowledged, and all were
    from mqtt.store import Store

    sp = w.node.cfg["spool"]
    assert Store(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"]).depth() == 0


def test_backlog_records_leave_the_flash_only_once_acknowledged():
    n = 300
    MQTT.broker_up = True
    w = Wakes(sleep_doc(awake_cap=30))
    w.wake()
    _day_of_backlog(w, n, 1763000000)
    mq = []

    def factory(*a, **kw):
        mq.append(LatentMQTT(*a, **kw))
        return mq[-1]

    # a wake cut by a power loss half way through the backlog (no save, no sleep)
    w.board.w = SlowWLAN(w.clock, w.log)
    node, _, _ = startup.build(lambda name: w.board, w.clock)
    node.link.factory = factory
    node.sensing.make_driver = lambda scfg: w.drv
    node.start()
    while not mq or len([m for m in mq[0].sent if m[0] == BASE + "/backlog"]) < n // 2:
        node.step()
        w.clock.advance(10)
    acked = [json.loads(m[1])["t"] for m in mq[0].sent if m[0] == BASE + "/backlog"]
    assert len(acked) < n  # still records out, unacknowledged, at the cut
    from mqtt.store import Store

    sp = node.cfg["spool"]
    st = Store(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"])
    left = [json.loads(r)["t"] for r in st.peek(n)]
    # every record not acknowledged is still on flash; acknowledged ones are committed in
    # groups, so fewer than COMMIT_EVERY + REPLAY_WINDOW of them may be kept (they go out
    # again, with their time, after the reboot)
    from node.delivery import COMMIT_EVERY, REPLAY_WINDOW

    times = [1763000000 + 300 * i for i in range(n)]
    assert set(times) - set(acked) <= set(left), len(left)
    assert len(left) < n - len(acked) + COMMIT_EVERY + REPLAY_WINDOW, (len(left), len(acked))
    assert left == times[n - len(left) :]  # the oldest unacknowledged first, in order
