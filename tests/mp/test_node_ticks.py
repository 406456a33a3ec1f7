# The node past the ticks wrap: ticks_ms() wraps at 2^30 ms and ticks_diff() means nothing
# beyond 2^29 ms (6.2 days). A virtual clock (node_fakes.Clock, 30-bit like the ESP32) runs the
# node for days in coarse steps; everything remembered across such gaps must stay right.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

from node_world import World, doc


def _week_of_messages():
    # Tests that run a simulated week keep every message the fake broker saw (to check them):
    # more than a small test heap holds, and none of it is the node's.
    node_heap.need(384, "the fake broker keeps a simulated week of messages: needs > 384K")


TIMEOUT = 120
DAY = 86400000
HALF = 1 << 29  # ms: ticks further apart than this compare the wrong way round


def _hourly(**kw):
    return doc(interval=3600, **kw)


def test_node_that_never_reached_its_broker_keeps_reading_after_6_days():
    # The boot grace ("first readings wait 15 s for the broker") must not come back when the
    # ticks since boot wrap: readings are taken, and kept, every hour whatever the day.
    w = World(_hourly(), broker_up=False)
    w.run(HALF - DAY, step=60000)
    before = w.drv.started
    w.run(DAY + 2 * DAY, step=60000)  # across 2^29 ms and well into the other half
    assert w.drv.started - before >= 71, w.drv.started - before
    assert w.node.delivery.pending() == w.drv.started


def test_diag_uptime_and_backlog_uptime_count_past_the_wrap():
    _week_of_messages()
    w = World(_hourly(diag={"interval": 86400}))
    w.node.time.synced = False  # unsynced: backlog records carry "up" seconds since boot
    w.run(7 * DAY, step=60000)
    d = json.loads(w.mq.topics("Erdgeschoss/Wohnzimmer/diag")[-1])
    assert 6 * 86400 <= d["uptime"] <= 7 * 86400, d["uptime"]
    w.mq.up = False
    w.run(3600000, step=60000)
    w.mq.up = True
    w.run(120000, step=1000)
    recs = [json.loads(m) for m in w.mq.topics("Erdgeschoss/Wohnzimmer/backlog")]
    assert recs, w.mq.sent[-5:]
    for r in recs:
        assert 7 * 86400 <= r["up"] <= 7 * 86400 + 3700, r


def test_diag_resumes_after_a_week_long_broker_outage():
    w = World(_hourly(diag={"interval": 3600}))
    w.run(3600000, step=60000)
    w.mq.up = False
    w.run(7 * DAY, step=60000)
    n = len(w.mq.topics("Erdgeschoss/Wohnzimmer/diag"))
    w.mq.up = True
    w.run(2 * 3600000, step=60000)
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/diag")) - n >= 2


class _NTP:
    def __init__(self, clock):
        self.clock = clock
        self.calls = []
        self.fail = False

    def settime(self):
        self.calls.append(self.clock.ms)
        if self.fail:
            raise OSError(110)


def _tk(resync):
    import node_fakes as F
    from node.timekeep import Timekeeper

    c = F.Clock()
    ntp = _NTP(c)
    return c, ntp, Timekeeper("pool.ntp.org", 3, resync, c, ntp)


def test_ntp_resync_of_a_week_waits_a_week():
    # resync may be up to 604800 s, more than 2^29 ms: a ticks deadline that far ahead reads
    # as already past, and the node would ask the NTP server on every loop step.
    c, ntp, tk = _tk(604800)
    for _ in range(8 * 24 * 60):
        tk.step(c.ticks_ms(), True)
        c.advance(60000)
    assert ntp.calls == [0, 604800000], ntp.calls


def test_ntp_retried_soon_after_wifi_returns_from_a_week_away():
    c, ntp, tk = _tk(21600)
    ntp.fail = True
    tk.step(c.ticks_ms(), True)  # fails: next try in 2 s
    for _ in range(7 * 24 * 60):  # a week without WiFi (the loop still runs)
        c.advance(60000)
        tk.step(c.ticks_ms(), False)
    ntp.fail = False
    t_back = c.ms
    for _ in range(600):
        c.advance(1000)
        tk.step(c.ticks_ms(), True)
    assert len(ntp.calls) == 2 and ntp.calls[1] - t_back <= 2000, ntp.calls
    assert tk.synced


def test_throttled_values_still_published_in_the_second_week():
    _week_of_messages()
    q = {"temperature": {"filters": [{"type": "throttle", "seconds": 1800}]}}
    s = {"type": "bme280", "address": "0x76", "quantities": q}
    w = World(_hourly(sensors=[s]))
    w.run(HALF, step=60000)
    n = len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp"))
    w.run(DAY, step=60000)  # one value an hour, throttle or not
    assert len(w.mq.topics("Erdgeschoss/Wohnzimmer/Temp")) - n >= 23


def _two_nets(w):
    tried = []
    w.board.w.connect = lambda ssid, pw: tried.append(ssid)
    return tried


def test_wifi_roams_to_the_next_network_after_a_drop_following_a_week_up():
    _week_of_messages()
    nets = [{"ssid": "a", "password": "secret123"}, {"ssid": "b", "password": "secret123"}]
    w = World(_hourly(wifi=nets))
    tried = _two_nets(w)
    w.run(7 * DAY, step=60000)
    w.board.w.up = False
    w.run(60000, step=1000)
    assert "b" in tried, tried


def test_wifi_down_time_counts_a_week_long_outage():
    _week_of_messages()
    w = World(_hourly())
    w.run(3600000, step=60000)
    w.board.w.up = False
    w.run(7 * DAY, step=60000)
    w.board.w.up = True
    w.run(60000, step=60000)
    down = w.node.link.wifi_down_ms(w.clock.ticks_ms()) // 1000
    assert 7 * 86400 - 120 <= down <= 7 * 86400 + 60, down


def test_discovery_round_planned_before_a_week_long_outage_goes_out_after_it():
    w = World(_hourly(discovery={"enabled": True}))
    w.run(60000, step=1000)
    n = len([m for m in w.mq.sent if m[0].endswith("/config")])
    w.mq.deliver("homeassistant/status", "online")  # HA restarted: the set again in 1..10 s
    w.run(1000, step=1000)
    w.mq.up = False
    w.run(7 * DAY, step=60000)
    w.mq.up = True
    w.run(60000, step=1000)
    assert len([m for m in w.mq.sent if m[0].endswith("/config")]) - n == 3


def test_console_lines_carry_uptime_and_remind_past_the_wrap():
    _week_of_messages()
    from node import log

    w = World(_hourly())
    log.epoch = None  # stamps by uptime here (Unix stamps once synced: test_node_timekeep)
    w.run(7 * DAY, step=60000)
    w.board.w.up = False
    w.run(3000, step=1000)
    lines = w.mq.topics("Erdgeschoss/Wohnzimmer/log") + log.ring
    line = [x for x in lines if "wifi: down" in x][-1]
    assert 7 * 86400 <= int(line.split()[0][1:]) <= 7 * 86400 + 2, line
    log.say("sensor x", "gone", now=0)
    n = len(log.ring)
    log.say("sensor x", "gone", now=(7 * DAY) & ((1 << 30) - 1))  # a week later: a reminder
    assert len(log.ring) == n + 1 and "still" in log.ring[-1], log.ring[-1]
