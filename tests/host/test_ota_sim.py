# Over-the-air updates of simulated nodes against a real mosquitto: the canary and the rest
# take the new version and confirm it; a version that crashes at import rolls back by itself;
# a power cut during the transfer resumes and ends in a complete version.
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from nodectl import build, bundle  # noqa: E402
from nodectl import ota as hostota  # noqa: E402

from test_node_sim import BME, SimNode, config, scenario  # noqa: E402

pytestmark = pytest.mark.timeout(240)
SECRET = b"fleet-secret-for-tests"
REPO = Path(__file__).resolve().parents[2]


def make_bundle(tmp: Path, version: str, poison: bool = False, trial_s: int = 60):
    lib = tmp / ("lib-" + version)
    import shutil

    shutil.copytree(REPO / "lib", lib)
    if poison:
        with open(lib / "mqtt" / "store.py", "a") as f:
            f.write('\nraise RuntimeError("injected bug")\n')
    out = tmp / ("build-" + version)
    build.build(lib, REPO / "firmware", out, version=version)
    return bundle.pack(out, version, "linux", trial_s)


def start(tmp: Path, port: int, name: str):
    cfg = config(port, topic="OTA%s/%s" % (id(tmp) % 100000, name))
    n = SimNode(tmp / name, cfg, scenario(10, [BME]))
    n.env["SIM_MAC"] = "24:0a:c4:00:%02x:%02x" % (len(name), sum(map(ord, name)) % 256)
    (n.dev / "ota.key").write_bytes(bundle.node_key(SECRET, cfg["topic"]))
    return n.start(), cfg["topic"]


def state(s, base):
    raw = s.seen.get(base, {}).get("state")
    return json.loads(raw) if raw else {}


def test_three_nodes_take_the_update_canary_first(broker, tmp_path):
    body, blob = make_bundle(tmp_path, "2")
    nodes = [start(tmp_path, broker.port, "n%d" % i) for i in range(3)]
    s = hostota.Session("127.0.0.1", broker.port)
    try:
        res = hostota.rollout(
            s, [b for _, b in nodes], body, blob, SECRET, batch=2, confirm_s=60, progress=None
        )
        assert res == {b: "ok" for _, b in nodes}, [n.log() for n, _ in nodes]
        for n, b in nodes:
            assert state(s, b) == {"version": "2", "update": "ok"}
            assert (n.dev / "v" / "2" / "lib" / "node" / "app.mpy").is_file()
    finally:
        s.close()
        for n, _ in nodes:
            n.stop()


def test_wrong_signature_is_refused_and_old_version_keeps_running(broker, tmp_path):
    body, blob = make_bundle(tmp_path, "2")
    n, base = start(tmp_path, broker.port, "w")
    s = hostota.Session("127.0.0.1", broker.port)
    try:
        bad = bundle.sign(body, bundle.node_key(b"not the fleet secret", base))
        assert hostota.update(s, base, bad, blob) == (False, "bad signature")
        assert not (n.dev / "ota.ptr").exists()
        assert n.codes() == []  # no reset: the same boot runs on
    finally:
        s.close()
        n.stop()


def test_update_that_crashes_at_import_rolls_back(broker, tmp_path):
    body, blob = make_bundle(tmp_path, "3", poison=True)
    n, base = start(tmp_path, broker.port, "c")
    s = hostota.Session("127.0.0.1", broker.port)
    try:
        res = hostota.rollout(s, [base], body, blob, SECRET, confirm_s=60, progress=None)
        assert res == {base: "rolled back"}, n.log()
        st = state(s, base)
        assert st == {"version": None, "update": "rolled back"}, st
    finally:
        s.close()
        n.stop()


def test_power_cut_during_transfer_resumes_to_a_complete_version(broker, tmp_path):
    body, blob = make_bundle(tmp_path, "4")
    n, base = start(tmp_path, broker.port, "k")
    s = hostota.Session("127.0.0.1", broker.port)
    payload = bundle.sign(body, bundle.node_key(SECRET, base))
    cuts = [len(blob) // 5, len(blob) // 2, len(blob) * 4 // 5]
    try:

        def cut_at(b, done, total):
            if cuts and done >= cuts[0]:
                cuts.pop(0)
                threading.Thread(target=n.power_cut, daemon=True).start()

        ok = False
        for _ in range(8):  # each cut ends one transfer; the next resumes where flash stands
            ok, why = hostota.update(s, base, payload, blob, cut_at, wait_s=3)
            if ok:
                break
        assert ok, n.log()
        assert hostota.wait_state(s, base, "4", 60) == "ok", n.log()
        assert len(n.exits) >= 3  # the cuts really happened
    finally:
        s.close()
        n.stop()
