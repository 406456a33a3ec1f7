# Over-the-air updates of simulated nodes against a real mosquitto: the canary and the rest
# take the new version and confirm it; each refusal leaves the old version running; a version
# that crashes at import or never connects rolls back by itself; power cuts at random points of
# the transfer, the switch and the trial boot always leave a whole version.
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from nodectl import build, bundle, fleet  # noqa: E402
from nodectl import ota as hostota  # noqa: E402

from test_node_sim import BME, Observer, SimNode, config, scenario  # noqa: E402

pytestmark = pytest.mark.timeout(240)
SECRET = b"fleet-secret-for-tests"
REPO = Path(__file__).resolve().parents[2]
SPEED = 10  # simulated seconds per real second: a 60 s trial lasts 6 s

_POISON = {
    # an update whose code crashes as soon as the node imports it
    "crash": ("store.py", '\nraise RuntimeError("injected bug")\n'),
    # an update whose client never reaches the broker: every connect fails
    "noconnect": (
        "client.py",
        "\n\ndef _refused(self, *a, **k):\n"
        "    raise OSError(111)  # injected: ECONNREFUSED, always\n\n\n"
        "MQTTClient.begin_connect = _refused\n",
    ),
}


_BUILDS: dict[tuple[str, str | None], Path] = {}  # one compile per version for the whole file


def make_build(tmp: Path, version: str, poison: str | None = None) -> Path:
    done = _BUILDS.get((version, poison))
    if done is not None and done.is_dir():
        return done
    lib = tmp / ("lib-" + version)
    shutil.copytree(REPO / "lib", lib)
    if poison:
        name, code = _POISON[poison]
        with open(lib / "mqtt" / name, "a") as f:
            f.write(code)
    out = tmp / ("build-" + version)
    build.build(lib, REPO / "firmware", out, version=version)
    _BUILDS[(version, poison)] = out
    return out


def make_bundle(tmp: Path, version: str, poison: str | None = None, trial_s: int = 60):
    return bundle.pack(make_build(tmp, version, poison), version, "linux", trial_s)


def start(tmp: Path, port: int, name: str):
    cfg = config(port, topic="OTA%s/%s" % (id(tmp) % 100000, name))
    n = SimNode(tmp / name, cfg, scenario(SPEED, [BME]))
    n.env["SIM_MAC"] = "24:0a:c4:00:%02x:%02x" % (len(name), sum(map(ord, name)) % 256)
    (n.dev / "ota.key").write_bytes(bundle.node_key(SECRET, cfg["topic"]))
    return n.start(), cfg["topic"]


def state(s, base):
    raw = s.seen.get(base, {}).get("state")
    return json.loads(raw) if raw else {}


def retained_state(port: int, base: str) -> tuple[dict, bool]:
    """What a newcomer (the fleet view) reads on <base>/ota/state: (document, retained)."""
    o = Observer(port, (base + "/ota/state",))
    try:
        o.wait(lambda: o.msgs, 5)
        _, raw, ret = o.msgs[-1]
        return json.loads(raw), ret
    finally:
        o.stop()


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
        # Someone who recorded the transfer off the broker sends it again: refused, unchanged.
        _, b = nodes[0]
        seq = json.loads(body)["seq"]
        again = hostota.update(s, b, bundle.sign(body, bundle.node_key(SECRET, b)), blob)
        assert again == (False, "bundle %d is not newer than the last installed (%d)" % (seq, seq))
    finally:
        s.close()
        for n, _ in nodes:
            n.stop()


# ---- refusals: one node takes all four; each must leave it running the old version -------------
@pytest.fixture(scope="module")
def refusing(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refusals")
    out = make_build(tmp, "2")
    n, base = start(tmp, broker.port, "r")
    s = hostota.Session("127.0.0.1", broker.port)
    o = Observer(broker.port, (base + "/#",))
    try:
        yield n, base, s, o, out
    finally:
        o.stop()
        s.close()
        n.stop()


def _refused(refusing, body, blob, key_secret=SECRET):
    n, base, s, o, _ = refusing
    assert o.wait(lambda: o.topic(base + "/Temp"), 30), n.log()  # up and publishing
    payload = bundle.sign(body, bundle.node_key(key_secret, base))
    ok, why = hostota.update(s, base, payload, blob, wait_s=5)
    assert not ok, why
    seen = len(o.topic(base + "/Temp"))
    # still the old version: no pointer, no reset, nothing half-installed, readings go on
    assert not (n.dev / "ota.ptr").exists()
    assert not (n.dev / "v").exists()
    assert not (n.dev / "ota" / "stage").exists()
    assert o.wait(lambda: len(o.topic(base + "/Temp")) >= seen + 2, 10), n.log()
    assert n.codes() == [], n.log()
    results = [json.loads(p) for p in o.topic(base + "/ota/result")]
    assert results[-1] == {"ok": False, "reason": why}
    return why


def test_corrupted_chunk_is_refused_and_old_version_keeps_running(refusing):
    body, blob = bundle.pack(refusing[4], "2", "linux", 60)
    bad = bytearray(blob)
    bad[len(blob) // 2] ^= 0x40  # one bit flipped on the way
    why = _refused(refusing, body, bytes(bad))
    assert why.endswith(": sha256 mismatch (corrupted in transfer)"), why


def test_wrong_signature_is_refused_and_old_version_keeps_running(refusing):
    body, blob = bundle.pack(refusing[4], "2", "linux", 60)
    assert _refused(refusing, body, blob, b"not the fleet secret") == "bad signature"


def test_bundle_for_another_board_is_refused_and_old_version_keeps_running(refusing):
    body, blob = bundle.pack(refusing[4], "2", "esp32", 60)
    why = _refused(refusing, body, blob)
    assert why == "bundle is for board 'esp32', this node is 'linux'", why


def test_truncated_bundle_is_refused_and_old_version_keeps_running(refusing):
    # The host's copy is shorter than its manifest says: after its last byte it sends an empty
    # chunk (nothing more to give), and the node refuses instead of waiting for ever.
    body, blob = bundle.pack(refusing[4], "2", "linux", 60)
    short = blob[: len(blob) * 2 // 3]
    why = _refused(refusing, body, short)
    assert why == "bundle truncated: %d of %d bytes" % (len(short), len(blob)), why


# ---- rollback ------------------------------------------------------------------------------------
def _rolls_back(broker, tmp_path, poison, trial_s, name, log_line):
    body, blob = make_bundle(tmp_path, "3", poison, trial_s)
    n, base = start(tmp_path, broker.port, name)
    s = hostota.Session("127.0.0.1", broker.port)
    try:
        s.c.subscribe(base + "/ota/state", 1)
        payload = bundle.sign(body, bundle.node_key(SECRET, base))
        assert hostota.update(s, base, payload, blob) == (True, "3"), n.log()
        t0 = time.monotonic()
        # the trial boot (one reset), the trial time, the rollback reset, the old boot's connect
        limit = trial_s / SPEED + 20
        assert hostota.wait_state(s, base, "3", limit) == "rolled back", n.log()
        took = time.monotonic() - t0
        print(
            "%s: 'rolled back' seen %.1f s after the host got 'done' (trial %d s simulated)"
            % (poison, took, trial_s)
        )
        ptr = json.loads((n.dev / "ota.ptr").read_text())
        assert (ptr["cur"], ptr["bad"], ptr["state"]) == (None, "3", "rolled back"), ptr
        assert log_line in n.log(), n.log()
        doc, retained = retained_state(broker.port, base)
        assert doc == {"version": None, "update": "rolled back"} and retained, (doc, retained)
        rows = fleet.scan("127.0.0.1", broker.port, wait_s=5).rows(base)  # what a user sees
        assert [r["update"] for r in rows] == ["rolled back"], rows
        return ptr
    finally:
        s.close()
        n.stop()


def test_update_that_crashes_at_import_rolls_back(broker, tmp_path):
    ptr = _rolls_back(broker, tmp_path, "crash", 60, "c", "injected bug")
    assert ptr["why"].startswith(("crashed at start", "safe mode at start")), ptr


def test_update_that_never_connects_rolls_back_within_its_trial_time(broker, tmp_path):
    ptr = _rolls_back(broker, tmp_path, "noconnect", 60, "nc", "did not connect in 60 s")
    assert ptr["why"] == "not connected and published within 60 s", ptr


# ---- power cuts --------------------------------------------------------------------------------
def new_state(s, base: str, timeout: float) -> dict:
    """The next <base>/ota/state the node publishes (each boot does, once connected)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = state(s, base)
        if st:
            return st
        time.sleep(0.1)
    return {}


def whole_version(dev: Path):
    """The version the pointer names, checked against its manifest (None: the USB files)."""
    try:
        ptr = json.loads((dev / "ota.ptr").read_text())
    except (OSError, ValueError):
        return None
    cur = ptr.get("cur")
    if cur is None:
        return None
    d = dev / "v" / cur
    m = json.loads((d / "manifest.json").read_text())
    for path, size, sha in m["files"]:
        data = (d / path).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, (cur, path)
    return cur


def where(dev: Path, target: str) -> str:
    """Where on flash a cut landed, from what it left (for the printed summary)."""
    try:
        cur = json.loads((dev / "ota.ptr").read_text()).get("cur")
    except (OSError, ValueError):
        cur = None
    if cur == target:
        return "switched"
    if (dev / "ota" / "stage" / "manifest.json").exists():
        return "staging"
    if (dev / "v" / target).is_dir():
        return "renamed, pointer not written"
    return "before staging"


def test_power_cuts_at_10_random_points_always_leave_a_whole_version(broker, tmp_path):
    seed = int(os.environ.get("OTA_CUT_SEED") or random.randrange(1 << 30))
    print("power-cut seed %d (rerun: OTA_CUT_SEED=%d)" % (seed, seed))
    rng = random.Random(seed)
    bundles = {v: make_bundle(tmp_path, v) for v in ("2", "4")}  # "2": the canary's build
    n, base = start(tmp_path, broker.port, "k")
    s = hostota.Session("127.0.0.1", broker.port)
    s.c.subscribe(base + "/ota/state", 1)
    # 10 points: 5 in the transfer (a fraction of the bytes), 4 in the switch (a delay after
    # the last chunk goes: the node is writing it, hashing, renaming or writing the pointer),
    # 1 in the trial boot (a delay after the node said done).
    plan = [("transfer", rng.random()) for _ in range(5)]
    plan += [("switch", rng.uniform(0.0, 0.15)) for _ in range(4)]
    plan += [("trial", rng.uniform(0.0, 2.0))]
    rng.shuffle(plan)
    landed = []

    def bundle_for(target):
        # The same bundle while it is not installed (so a cut transfer resumes); once a version
        # was installed, a node takes only a newer bundle: pack it again.
        ptr = n.dev / "ota.ptr"
        last = (json.loads(ptr.read_text()).get("seq") or 0) if ptr.exists() else 0
        if json.loads(bundles[target][0])["seq"] <= last:
            bundles[target] = make_bundle(tmp_path, target)
        return bundles[target]

    try:
        assert new_state(s, base, 30), n.log()  # up and connected
        for kind, x in plan:
            running = whole_version(n.dev)
            target = "2" if running == "4" else "4"
            body, blob = bundle_for(target)
            payload = bundle.sign(body, bundle.node_key(SECRET, base))
            cut = threading.Event()
            boots = len(n.exits)

            def kill(target=target, cut=cut):
                with s.lock:
                    s.seen.get(base, {}).pop("state", None)
                n.power_cut()
                landed.append(where(n.dev, target))
                cut.set()

            def progress(b, done, total, kind=kind, x=x, cut=cut, kill=kill):
                if cut.is_set():
                    raise ConnectionAbortedError  # this transfer is over: the node lost power
                if kind == "transfer" and done >= x * total:
                    kill()
                elif kind == "switch" and done + hostota.CHUNK >= total:
                    threading.Timer(x, kill).start()

            try:
                ok, _ = hostota.update(s, base, payload, blob, progress, wait_s=3)
            except ConnectionAbortedError:
                ok = False
            if kind == "trial" and ok:
                time.sleep(x)
                kill()
            if not cut.wait(5):
                landed.append("no cut (%s: transfer ended first)" % kind)
                continue
            # the node boots again and reports; what it runs is a whole version
            assert len(n.exits) > boots
            st = new_state(s, base, 30)
            assert st, n.log()
            got = whole_version(n.dev)
            assert st["version"] in (None, got) or st["version"] == running, (st, got)
        print("power cuts landed: %s" % landed)
        assert sum(1 for w in landed if not w.startswith("no cut")) >= 8, landed
        # and the update still goes through in the end
        running = whole_version(n.dev)
        target = "2" if running == "4" else "4"
        body, blob = bundle_for(target)
        payload = bundle.sign(body, bundle.node_key(SECRET, base))
        assert hostota.update(s, base, payload, blob) == (True, target), n.log()
        assert hostota.wait_state(s, base, target, 60) == "ok", n.log()
        assert whole_version(n.dev) == target
    finally:
        s.close()
        n.stop()
