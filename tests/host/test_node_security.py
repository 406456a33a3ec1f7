"""Takeover attempts end to end: the real firmware on the simulated board against mosquitto,
and a client anyone on the broker could run. The node ignores or refuses each attempt, says
why, keeps running on its own broker, and its settings stay as deployed.

What a broker user can do to a node is described in docs/security.md.
"""

from __future__ import annotations

import json
import time

import pytest
from fixtures.broker import PASSWORD, USER
from test_node_sim import BME, Observer, SimNode, config, scenario

pytestmark = pytest.mark.timeout(180)

_seq = [0]


def _base():
    _seq[0] += 1
    return "Sec%d-%d/Keller" % (int(time.time()) % 100000, _seq[0])


def _results(o, base):
    return [json.loads(x) for x in o.topic(base + "/result")]


def _send(o, base, cmd, n_before, topic=None):
    """Publish cmd on <base>/cmd (or topic); the result that follows, or None after 10 s."""
    o.publish(topic or base + "/cmd", cmd if isinstance(cmd, str) else json.dumps(cmd))
    if not o.wait(lambda: len(o.topic(base + "/result")) > n_before, 10):
        return None
    return _results(o, base)[n_before]


def test_a_broker_user_cannot_take_over_the_node(broker, private_broker, tmp_path):
    evil = private_broker  # a second mosquitto the attacker would like the node to use
    base = _base()
    o = Observer(broker.port, (base + "/#",))
    try:
        # Retained commands left on the broker before the node starts: never run.
        o.publish(base + "/cmd", '{"cmd":"reboot","id":"r0"}', retain=True)
        cfg = config(broker.auth_port, topic=base, commands={"confirm_timeout": 10})
        cfg["mqtt"] = {"host": "127.0.0.1", "port": broker.auth_port}
        node = SimNode(tmp_path / "n", cfg, scenario(10, [BME]))
        (node.dev / "secrets.json").write_text(
            json.dumps({"mqtt": {"user": USER, "password": PASSWORD}})
        )
        deployed = {f: (node.dev / f).read_bytes() for f in ("config.json", "secrets.json")}
        node.start()
        try:
            _attack(o, base, node, evil, broker)
            # nothing changed on the node's flash, and it never rebooted
            for f, b in deployed.items():
                assert (node.dev / f).read_bytes() == b, f
            assert not (node.dev / "config.trial.json").exists()
            assert node.codes() == [], node.codes()
            # the node never so much as connected to the attacker's broker
            assert "New client connected" not in evil.log_text(), evil.log_text()[-2000:]
        finally:
            node.stop()
    finally:
        o.publish(base + "/cmd", "", retain=True)
        o.stop()


def _attack(o, base, node, evil, broker):
    assert o.wait(lambda: len(o.topic(base + "/Temp")) >= 1, 40), node.log()
    time.sleep(1)
    assert _results(o, base) == []  # the retained reboot did nothing
    n = 0

    # Commands on topics next to <base>/cmd: not subscribed, so never seen.
    for t in ("/cmd/x", "/Cmd", "/cmd/", "/cmd/result", "/cmdx"):
        o.publish(base + t, '{"cmd":"reboot","id":"w"}')
    time.sleep(1.5)  # 15 s simulated
    assert _results(o, base) == [] and node.codes() == []

    # A command too big for commands.max_bytes: refused with the sizes.
    r = _send(o, base, '{"cmd":"reboot","pad":"%s"}' % ("x" * 4000), n)
    n += 1
    assert r is not None and not r["ok"] and r["error"].startswith("payload too large"), r

    # set_config attempts on connection and security settings: each refused, nothing changed.
    attempts = [
        ({"mqtt": {"host": "localhost", "port": evil.port, "tls": False}},
         ["mqtt.host", "mqtt.port"]),
        ({"mqtt": {"user": "evil", "password": "evil-pass"}}, ["mqtt.user", "mqtt.password"]),
        ({"mqtt": {"client_id": "evil-node"}}, ["mqtt.client_id"]),
        ({"wifi": [{"ssid": "evil-ap", "password": "12345678"}]}, ["wifi"]),
        ({"commands": {"enabled": False}}, ["commands"]),
        ({"spool": {"file": "other.dat"}}, ["spool.file"]),
    ]  # fmt: skip
    for i, (change, names) in enumerate(attempts):
        r = _send(o, base, {"cmd": "set_config", "config": change, "id": i}, n)
        n += 1
        assert r is not None and r["id"] == i and not r["ok"], (change, r)
        probs = r["problems"]
        for name in names:
            assert any(p.startswith(name + ": cannot be changed over MQTT") for p in probs), (
                name,
                probs,
            )
        assert PASSWORD not in json.dumps(r) and "evil-pass" not in json.dumps(r)
    # a confirm without a trial confirms nothing
    r = _send(o, base, {"cmd": "confirm", "id": "c"}, n)
    n += 1
    assert r is not None and not r["ok"], r

    # A payload far beyond any buffer of the node (100 KB): dropped or refused, never run.
    o.publish(base + "/cmd", '{"cmd":"reboot","pad":"%s"}' % ("y" * 100000))
    time.sleep(1.5)
    assert all(not r.get("rebooting") for r in _results(o, base)), _results(o, base)

    # Still here, on its own broker, reading and publishing.
    seen = len(o.topic(base + "/Temp"))
    assert o.wait(lambda: len(o.topic(base + "/Temp")) > seen, 20), node.log()
    info = json.loads(o.topic(base + "/info")[-1])
    assert info["safe_mode"] is None and info["config_source"] == "config", info
