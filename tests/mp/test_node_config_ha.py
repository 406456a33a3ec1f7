# Home Assistant keeps entities available as long as the filters allow silence, and ghost
# entities of removed or renamed sensors are cleared; command error replies carry the id.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

import tmpdir
from node import discovery
from node.commands import error_result, parse
from node.discovery import Announcer, read_announced, write_announced
from node.payload import Topics
from test_node_discovery import all_messages, cfg


def _by_topic(c):
    return {
        json.loads(p)["state_topic"].split("/")[-1]: json.loads(p) for _, p in all_messages(c)[1]
    }


def test_expire_after_covers_the_heartbeat_of_the_shipped_example():
    c = cfg(
        sensors=[
            {
                "type": "bme280",
                "address": "0x76",
                "quantities": {
                    "temperature": {
                        "filters": [
                            {"type": "median", "size": 3},
                            {"type": "delta", "min": 0.1},
                            {"type": "heartbeat", "seconds": 600},
                        ]
                    },
                    "humidity": {"filters": [{"type": "delta", "min": 1}]},
                    "pressure": {"filters": [{"type": "throttle", "seconds": 300}]},
                },
            }
        ]
    )
    by = _by_topic(c)
    assert by["Temp"]["expire_after"] == 600 + 90, by["Temp"]
    assert "expire_after" not in by["Hum"]  # delta without heartbeat: no bound
    assert by["Press"]["expire_after"] == 300 + 90
    assert discovery.longest_gap({"filters": [{"type": "heartbeat", "seconds": 100}]}, 60) == 60
    assert (
        discovery.longest_gap(
            {"filters": [{"type": "delta", "min": 1}, {"type": "heartbeat", "seconds": 100}]}, 60
        )
        == 120
    )


def test_removed_or_renamed_sensor_configs_are_cleared_once():
    d = tmpdir.fresh_dir("disc")
    path = d + "/announced.txt"
    assert read_announced(path) == []
    c = cfg()
    a, msgs = all_messages(c)
    write_announced(a.announced(), path)
    assert read_announced(path) == [t for t, _ in msgs]
    # rename the light sensor, drop pressure from publishing
    c2 = cfg(
        sensors=[
            {"type": "bme280", "address": "0x76", "quantities": {"pressure": False}},
            {"type": "bh1750", "name": "lux2", "interval": 30},
        ]
    )
    a2 = Announcer(c2, Topics(c2["topic"]), "a4cf12345678", fw="1", rand=lambda n: 5)
    assert a2.forget(read_announced(path)) == 2
    a2.schedule(0)
    out = []
    while True:
        m = a2.step(0)
        if m is None:
            break
        out.append(m)
    cleared = sorted(t for t, p in out if p == "")
    assert cleared == sorted(t for t, _ in msgs if "pressure" in t or "licht" in t), cleared
    assert out[0][1] == "" and out[1][1] == ""  # clearing goes out first
    write_announced(a2.announced(), path)
    a3 = Announcer(c2, Topics(c2["topic"]), "a4cf12345678", rand=lambda n: 5)
    assert a3.forget(read_announced(path)) == 0


def test_announced_file_is_bounded():
    d = tmpdir.fresh_dir("disc")
    path = d + "/announced.txt"
    write_announced(["p/sensor/x/%d/config" % i for i in range(200)], path)
    assert len(read_announced(path)) == discovery.MAX_ANNOUNCED


def test_error_replies_carry_the_request_id():
    for msg, cmd in (
        (b'{"cmd":"explode","id":"x"}', "explode"),
        (b'{"cmd":"interval","seconds":0,"id":"x"}', "interval"),
        (b'{"cmd":"set_config","config":7,"id":"x"}', "set_config"),
    ):
        c, err = parse(msg)
        assert c is None and err
        r = json.loads(error_result(msg, err))
        assert r["id"] == "x" and r["ok"] is False and r["error"] == err and r["cmd"] == cmd, r
    r = json.loads(error_result(b"{not json", "malformed"))
    assert r == {"ok": False, "error": "malformed"}, r
