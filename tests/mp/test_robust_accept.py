# The wrapper used the umqtt.robust way (QoS 1 publish in a loop, return value ignored, no
# outbox_dir given) through a broker restart, link resets and a half-open link, against real
# mosquitto behind the fault proxy: every message arrives, repeats only with DUP, no call blocks.
import os
import time

import harness
from mqtt.robust import MQTTClient
from robust_util import Wire, check_dups
from tmpdir import fresh_dir

TIMEOUT = 90  # about 25 s of real time: 12 s of publishing, a 10 s half-open link, the drain

_N = 300
_PERIOD_MS = 40  # 25 msg/s


def test_robust_style_loop_loses_nothing_through_restart_resets_and_half_open():
    os.chdir(fresh_dir("robust_accept"))  # the default spill folder lands here
    b = harness.broker("rb-accept", persistence=True)
    p = harness.proxy(b["port"])
    o = harness.observe(b["port"], "rb/accept/#", qos=1)
    w = Wire(p["port"])
    c = MQTTClient("rb-accept", "127.0.0.1", p["port"], keepalive=3, clean_session=False,
                   sock_factory=w.factory, connect_timeout=1,
                   backoff_min=200, backoff_max=1000)  # fmt: skip
    c.connect()
    # (at ms, action): the faults, in the order they happen
    plan = [
        (500, "rst"),
        (1000, "stop"),  # the broker is away for 3 s
        (4000, "start"),
        (6500, "rst"),
        (7000, "blackhole"),  # a half-open link for 10 s
        (17000, "pass"),
    ]
    gate = False  # after the restart: hold the client off until the observer is back
    worst = 0
    spilled = 0
    i = 0
    t0 = time.ticks_ms()
    while True:
        now = time.ticks_diff(time.ticks_ms(), t0)
        while plan and plan[0][0] <= now:
            act = plan.pop(0)[1]
            if act == "rst":
                harness.proxy_mode(p["id"], "cut", how="rst")
            elif act == "stop":
                harness.proxy_mode(p["id"], "refuse")
                harness.broker_stop("rb-accept")
            elif act == "start":
                harness.broker_start("rb-accept")
                gate = True
            elif act == "blackhole":
                harness.proxy_mode(p["id"], "blackhole", dir="both")
            else:
                harness.proxy_mode(p["id"], "pass")
        if gate:
            harness.publish(b["port"], "rb/accept/probe", "p", qos=1)
            got = harness.messages(o, timeout=0)
            if any(m["topic"] == "rb/accept/probe" for m in got):
                harness.proxy_mode(p["id"], "pass")
                gate = False
        s = time.ticks_ms()
        if i < _N and now >= i * _PERIOD_MS:
            c.publish("rb/accept/t", "%03d" % i, qos=1)  # return value ignored, as umqtt users do
            i += 1
        c.step()
        d = time.ticks_diff(time.ticks_ms(), s)
        worst = d if d > worst else worst
        spilled = max(spilled, c.status().get("spilled", 0))
        if i == _N and not plan and not gate and c.is_connected() and c.idle():
            break
        assert now < 40000, ("not drained", i, c.status())
        time.sleep_ms(10)
    got = harness.messages(o, wait_for=_N, timeout=10, field="payload")
    got = [m for m in got if m != "p"]
    assert sorted(set(got)) == ["%03d" % k for k in range(_N)], (len(set(got)), c.status())
    check_dups(w.publishes())  # every repeat carried DUP=1 and its first packet id
    st = c.status()
    assert st["drops"] == 0 and st["reconnects"] >= 3, st
    assert worst <= 1500, worst
    assert spilled > 0  # the outage outlasted the RAM outbox: the rest waited on flash
    print("worst call %d ms, at most %d spilled, status %r" % (worst, spilled, st))
    c.disconnect()
