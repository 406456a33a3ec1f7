# nodectl fleet: the table of every node from what it keeps retained on the broker, against
# simulated nodes and a real mosquitto; the rollout's summary; one-line errors for a bad
# broker address and a broker that is down or silent.
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from nodectl import bundle, fleet  # noqa: E402
from nodectl import ota as hostota  # noqa: E402
from nodectl.common import ToolFailed  # noqa: E402

from test_node_sim import BME, SimNode, config, scenario  # noqa: E402
from test_ota_sim import SECRET, make_bundle  # noqa: E402
from tools_util import run_nodectl  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def prefix(tmp: Path) -> str:
    """A base-topic prefix of this test's own: the shared broker keeps other tests' nodes."""
    return "Fleet%d-%d" % (os.getpid(), id(tmp) % 100000)


def start(tmp: Path, port: int, base: str, ota_key: bool = False) -> SimNode:
    cfg = config(port, topic=base, diag={"interval": 10})  # 1 s of real time at speed 10
    n = SimNode(tmp / base.replace("/", "_"), cfg, scenario(10, [BME]))
    n.env["SIM_MAC"] = "24:0a:c4:00:%02x:%02x" % (len(base), sum(map(ord, base)) % 256)
    if ota_key:
        (n.dev / "ota.key").write_bytes(bundle.node_key(SECRET, base))
    return n.start()


def wait_rows(port: int, pattern: str, pred, timeout: float = 60.0) -> list[dict]:
    end = time.monotonic() + timeout
    rows = []
    while time.monotonic() < end:
        rows = fleet.scan("127.0.0.1", port, wait_s=5).rows(pattern)
        if pred(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(rows)


def test_lists_nodes_with_their_figures_and_a_stopped_one_as_offline_with_last_seen(
    broker, tmp_path
):
    p = prefix(tmp_path)
    a, b = start(tmp_path, broker.port, p + "/Bad/a"), start(tmp_path, broker.port, p + "/Flur/b")
    try:
        # both online, each with a diag that carries the node's clock (after its NTP sync)
        rows = wait_rows(
            broker.port,
            p + "/*",
            lambda rs: len(rs) == 2 and all(r["online"] == "online" and r["last_seen"] for r in rs),
        )
        for r in rows:
            assert r["version"] == "dev"  # the sim runs lib/ unbuilt: no version stamped
            assert r["uptime_s"] is not None and r["uptime_s"] >= 0
            assert r["rssi"] is not None and -100 < r["rssi"] < 0
            assert r["heap_free"] is not None and r["heap_free"] > 0
            assert r["safe_mode"] is None and r["update"] is None
        b.stop()
        rows = wait_rows(broker.port, p + "/*", lambda rs: rs[1]["online"] == "offline")
    finally:
        a.stop()
        b.stop()
    gone = rows[1]
    assert gone["node"] == p + "/Flur/b"
    # its last figures stay (diag is retained), and last seen is its last diag's clock
    assert gone["uptime_s"] is not None and gone["heap_free"] and gone["last_seen"]
    t0 = time.monotonic()
    r = run_nodectl("fleet", "--broker", "127.0.0.1:%d" % broker.port, "--nodes", p + "/*")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "VERSION", "ONLINE"]
    assert lines[2].startswith(p + "/Flur/b") and " offline " in lines[2]
    assert " ago " in lines[2] and " dBm " in lines[2]
    print("nodectl fleet against the sim: %.2f s" % took)
    j = run_nodectl(
        "fleet", "--broker", "127.0.0.1:%d" % broker.port, "--nodes", p + "/*", "--json"
    )
    assert [x["node"] for x in json.loads(j.stdout)] == [p + "/Bad/a", p + "/Flur/b"]


def test_canary_whose_update_crashes_shows_rolled_back_and_the_rest_are_skipped(broker, tmp_path):
    p = prefix(tmp_path)
    body, blob = make_bundle(tmp_path, "3", poison="crash")
    bases = [p + "/c", p + "/d"]
    nodes = [start(tmp_path, broker.port, base, ota_key=True) for base in bases]
    s = None
    try:
        before = wait_rows(
            broker.port, p + "/*", lambda rs: len(rs) == 2 and all(r["online"] for r in rs)
        )
        assert [r["version"] for r in before] == ["dev", "dev"]
        s = hostota.Session("127.0.0.1", broker.port)
        rows = hostota.rollout_report(
            s,
            bases,
            body,
            blob,
            SECRET,
            confirm_s=60,
            progress=None,
            before={r["node"]: r["version"] for r in before},
        )
        assert [r["result"] for r in rows] == ["rolled back", "skipped (canary failed)"], [
            n.log() for n in nodes
        ]
        assert rows[0]["before"] == "dev" and rows[1]["after"] == "dev"
        text = hostota.summary(rows)
        assert text.splitlines()[1].split()[:3] == [bases[0], "rolled", "back"]
        assert "dev -> dev" in text.splitlines()[2]
        after = wait_rows(broker.port, p + "/*", lambda rs: rs[0]["update"] == "rolled back")
        assert after[0]["version"] == "dev" and after[1]["update"] is None
        assert not (nodes[1].dev / "ota").exists()  # the skipped node got nothing
    finally:
        if s is not None:
            s.close()
        for n in nodes:
            n.stop()


def test_summary_shows_the_nodes_refusal_reason():
    rows = [
        {
            "node": "Haus/Bad",
            "result": "refused: bad signature",
            "before": "1",
            "after": "1",
            "s": 3,
        },
        {"node": "Haus/Flur", "result": "ok", "before": "1", "after": "2", "s": 125},
    ]
    lines = hostota.summary(rows).splitlines()
    assert lines[0].split() == ["NODE", "RESULT", "VERSION", "TIME"]
    assert "refused: bad signature" in lines[1] and "1 -> 1" in lines[1] and "3s" in lines[1]
    assert "2m 5s" in lines[2] and "1 -> 2" in lines[2]


def test_view_keeps_only_our_nodes_and_takes_the_newest_of_clock_and_arrival():
    v = fleet.FleetView()
    v.on_message("zigbee2mqtt/bridge/info", b'{"version":"1.0"}', True, 1000)  # not a node
    v.on_message("A/B/status", b"online", True, 1000)
    v.on_message("A/B/info", b'{"fw":"1.4","safe_mode":null}', True, 1000)
    v.on_message("A/B/ota/state", b'{"version":"2","update":"trial"}', True, 1000)
    v.on_message("A/B/diag", b'{"uptime":3700,"rssi":-61,"heap_free":40000,"t":900}', True, 1000)
    assert v.bases() == ["A/B"]
    r = v.row("A/B")
    assert (r["version"], r["update"], r["last_seen"], r["uptime_s"]) == ("2", "trial", 900, 3700)
    v.on_message("A/B/status", b"offline", False, 1050)  # arrived live: seen at 1050
    assert v.row("A/B")["last_seen"] == 1050
    line = fleet.render(v.rows(), now=1110).splitlines()[1].split()
    assert line == [
        "A/B",
        "2",
        "offline",
        "1h",
        "1m",
        "1m",
        "0s",
        "ago",
        "-61",
        "dBm",
        "40000",
        "-",
        "trial",
    ]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_broker_down_is_one_line_naming_it_and_exit_3():
    port = _free_port()
    r = run_nodectl("fleet", "--broker", "127.0.0.1:%d" % port, "--wait-s", "2")
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [
        "nodectl fleet: cannot connect to the broker at 127.0.0.1:%d: connection refused "
        "(is mosquitto running and listening on that address?)" % port
    ]


def test_bad_broker_address_is_one_line_and_exit_1_bad_wait_exit_2():
    r = run_nodectl("fleet", "--broker", "mqtt://pi.lan")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "nodectl fleet: broker mqtt://pi.lan: expected HOST or HOST:PORT, not a URL "
        "(drop the scheme)"
    ]
    r = run_nodectl("fleet", "--wait-s", "-1")
    assert r.returncode == 2 and "--wait-s" in r.stderr


def test_a_silent_broker_is_given_up_after_wait_s():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepts the TCP connection, never answers CONNECT
    port = srv.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(ToolFailed, match="127.0.0.1:%d did not answer within 0.5 s" % port):
            fleet.scan("127.0.0.1", port, wait_s=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        srv.close()


def test_no_node_on_the_broker_is_refused_with_exit_1(broker):
    r = run_nodectl(
        "fleet", "--broker", "127.0.0.1:%d" % broker.port, "--nodes", "Nobody-%d/*" % os.getpid()
    )
    assert r.returncode == 1
    assert r.stderr.startswith("nodectl fleet: no node found on 127.0.0.1:")


def test_ota_skips_a_node_that_is_offline_and_says_so_in_the_summary(broker, tmp_path):
    import paho.mqtt.client as mqtt

    base = prefix(tmp_path) + "/Keller"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port, 30)
    c.loop_start()
    try:
        for rel, text in (("info", '{"fw":"1.2"}'), ("status", "offline")):
            c.publish(base + "/" + rel, text, qos=1, retain=True).wait_for_publish(5)
    finally:
        c.loop_stop()
        c.disconnect()
    bundle.write(tmp_path / "b.ota", b'{"version":"1.3"}', b"")
    (tmp_path / "fleet.secret").write_bytes(SECRET)
    r = run_nodectl(
        "ota", "--bundle", tmp_path / "b.ota", "--secret", tmp_path / "fleet.secret",
        "--nodes", base, "--broker", "127.0.0.1:%d" % broker.port,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[1].split() == [
        base,
        "skipped",
        "(offline)",
        "1.2",
        "->",
        "1.2",
        "0s",
    ]


def test_confirmation_waits_for_a_fresh_state_not_a_retained_rollback_of_before(broker, tmp_path):
    import paho.mqtt.client as mqtt

    base = prefix(tmp_path) + "/Dach"
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port, 30)
    c.loop_start()
    s = hostota.Session("127.0.0.1", broker.port)
    try:
        # an earlier update of this node rolled back: the broker still holds that state
        old = '{"version":null,"update":"rolled back"}'
        c.publish(base + "/ota/state", old, qos=1, retain=True).wait_for_publish(5)
        s.watch(base)
        assert hostota.wait_state(s, base, "2", 1.0) == "no confirmation"
        new = '{"version":"2","update":"ok"}'  # the node confirmed the new version
        threading.Timer(
            0.3, lambda: c.publish(base + "/ota/state", new, qos=1, retain=True)
        ).start()
        assert hostota.wait_state(s, base, "2", 10.0) == "ok"
    finally:
        s.close()
        c.loop_stop()
        c.disconnect()
