"""Send an update bundle to nodes over their broker: canary first, then the rest a few at a
time; one result per message from the node drives the next chunk (stop and wait). The nodes
come from the fleet view (nodectl.fleet); a summary table ends the rollout.

    nodectl ota --bundle build/bundle.ota --secret fleet.secret --nodes 'Haus/*' --broker h:1883
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

from nodectl import bundle, fleet
from nodectl.common import Refused, ToolFailed, connect_error, parse_broker, positive

CHUNK = 1024  # data bytes per chunk: well below the node client's max_packet
WAIT_S = 20.0  # one result: the longest a node may take (it verifies a file at its end)
RETRIES = 5  # unanswered messages in a row before a node is given up


class Session:
    """One broker connection; results of every node arrive on one bounded queue per node."""

    def __init__(self, host: str, port: int, user=None, password=None):
        import paho.mqtt.client as mqtt  # here: every other subcommand runs without paho

        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            self.c.username_pw_set(user, password)
        self.q: dict[str, queue.Queue] = {}
        self.seen: dict[str, dict[str, bytes]] = {}
        # ota/state sent live since watch(): a retained one may be from an earlier update
        self.fresh: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.c.on_message = self._on
        try:
            self.c.connect(host, port, 30)
        except OSError as e:
            raise ToolFailed(connect_error(host, port, e)) from None
        self.c.loop_start()

    def _on(self, c, u, m):
        if m.topic.endswith("/ota/result"):
            base = m.topic[: -len("/ota/result")]
            q = self.q.get(base)
            if q is not None:
                try:
                    q.put_nowait(json.loads(m.payload))
                except (queue.Full, ValueError):
                    pass  # full: the sender is behind; it asks again on timeout
        else:
            base, _, rel = m.topic.rpartition("/")
            if rel not in ("info", "status", "state"):
                return
            if rel == "state":
                base = base[: -len("/ota")]
            with self.lock:
                self.seen.setdefault(base, {})[rel] = bytes(m.payload)
                if rel == "state" and not m.retain:  # MQTT-3.3.1-9: live, not the stored copy
                    self.fresh[base] = bytes(m.payload)

    def watch(self, base: str):
        self.q[base] = queue.Queue(maxsize=64)
        with self.lock:
            self.fresh.pop(base, None)
        topics = ("/ota/result", "/ota/state", "/info")
        self.c.subscribe([(base + t, 1) for t in topics])
        return self.q[base]

    def ask(self, base: str, topic: str, payload: bytes, wait_s: float):
        """Publish and wait for the node's next result (None after RETRIES timeouts)."""
        q = self.q[base]
        for _ in range(RETRIES):
            self.c.publish(base + "/ota/" + topic, payload, qos=1)
            try:
                return q.get(timeout=wait_s)
            except queue.Empty:
                continue
        return None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def update(s: Session, base: str, payload: bytes, blob: bytes, progress=None, wait_s=WAIT_S):
    """Transfer one bundle to one node. Returns (True, version) or (False, reason)."""
    s.watch(base)
    res = s.ask(base, "manifest", payload, wait_s)
    if res is None:
        return False, "no answer"
    if not res.get("ok"):
        return False, res.get("reason", "refused")
    nxt = res["next"]
    while True:
        if progress:
            progress(base, nxt, len(blob))
        res = s.ask(base, "chunk", nxt.to_bytes(4, "big") + blob[nxt : nxt + CHUNK], wait_s)
        if res is None:
            return False, "no answer at byte %d" % nxt
        if not res.get("ok"):
            return False, res.get("reason", "refused")
        if "done" in res:
            return True, res["done"]
        nxt = res["next"]


def wait_state(s: Session, base: str, version: str, timeout: float) -> str:
    """After the switch (update() watches the node): the ota/state the node sends from now on,
    until it confirms or rolls back. The copy the broker kept is not looked at: it may say
    "rolled back" about an earlier update."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with s.lock:
            raw = s.fresh.get(base)
        if raw:
            st = json.loads(raw)
            if st.get("update") == "rolled back":
                return "rolled back"
            if st.get("version") == version and st.get("update") == "ok":
                return "ok"
        time.sleep(0.2)
    return "no confirmation"


def _bar(base, done, total):
    n = 30 * done // max(total, 1)
    sys.stderr.write(
        "\r%-30s [%s%s] %3d%%" % (base[-30:], "#" * n, "." * (30 - n), 100 * done // max(total, 1))
    )
    sys.stderr.flush()


def rollout(s, bases, body, blob, secret, batch=3, confirm_s=180.0, progress=_bar):
    """Canary first (stop if it fails), then the rest `batch` at a time. Returns {base: result}."""
    rows = rollout_report(s, bases, body, blob, secret, batch, confirm_s, progress)
    return {r["node"]: r["result"] for r in rows}


def rollout_report(
    s,
    bases,
    body,
    blob,
    secret,
    batch=3,
    confirm_s=180.0,
    progress=_bar,
    before=None,
    clock=time.monotonic,
):
    """rollout() with one row per node, in `bases` order: node, result ("ok", "rolled back",
    "no confirmation", "refused: <the node's reason>", "skipped (canary failed)"), version
    before and after (before: {base: version} as the fleet view found it), seconds taken."""
    version = json.loads(body)["version"]
    before = before or {}
    out: dict[str, dict] = {}

    def one(b):
        t0 = clock()
        try:
            ok, why = update(s, b, bundle.sign(body, bundle.node_key(secret, b)), blob, progress)
            res = wait_state(s, b, version, confirm_s) if ok else "refused: " + why
        except Exception as e:  # noqa: BLE001 - keep the other nodes' rows
            res = "failed: %r" % e
        out[b] = {
            "node": b,
            "result": res,
            "before": before.get(b),
            "after": version if res == "ok" else running(s, b, before.get(b)),
            "s": int(clock() - t0),
        }

    one(bases[0])
    if out[bases[0]]["result"] != "ok":
        for b in bases[1:]:
            v = before.get(b)
            out[b] = {"node": b, "result": "skipped (canary failed)", "before": v, "after": v}
            out[b]["s"] = 0
    else:
        rest = bases[1:]
        for i in range(0, len(rest), batch):
            ts = [threading.Thread(target=one, args=(b,)) for b in rest[i : i + batch]]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
    return [out[b] for b in bases]


def running(s: Session, base: str, default):
    """The version a node runs by what it last published: its ota/state, else its info."""
    with s.lock:
        seen = s.seen.get(base, {})
        st, info = seen.get("state"), seen.get("info")
    for raw, key in ((st, "version"), (info, "fw")):
        try:
            v = json.loads(raw).get(key) if raw else None
        except (ValueError, AttributeError):
            v = None
        if v:
            return v
    return default


def summary(rows: list[dict]) -> str:
    """The table printed at the end of a rollout."""
    table = [("NODE", "RESULT", "VERSION", "TIME")] + [
        (
            r["node"],
            r["result"],
            "%s -> %s" % (r["before"] or "?", r["after"] or "?"),
            fleet.span(r["s"]),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in table
    )


def cmd_ota(args) -> int:
    body, blob = bundle.read(Path(args.bundle))
    secret = bundle.read_secret(Path(args.secret))
    host, port = parse_broker(args.broker)
    found = fleet.scan(host, port, args.user, args.password, args.wait_s).rows(args.nodes)
    if not found:
        raise Refused(f"no node matches {args.nodes!r} on {host}:{port}")
    # Only nodes online now: an offline canary would stop the rollout after a long silence.
    off = [r for r in found if r["online"] != "online"]
    skipped = [
        {
            "node": r["node"],
            "result": "skipped (%s)" % (r["online"] or "no status"),
            "before": r["version"],
            "after": r["version"],
            "s": 0,
        }
        for r in off
    ]
    bases = [r["node"] for r in found if r not in off]
    rows = []
    if bases:
        s = Session(host, port, args.user, args.password)
        try:
            rows = rollout_report(
                s,
                bases,
                body,
                blob,
                secret,
                args.batch,
                args.confirm_s,
                before={r["node"]: r["version"] for r in found},
            )
        finally:
            s.close()
        sys.stderr.write("\n")
    rows += skipped
    sys.stdout.write(summary(rows))
    return 0 if all(r["result"] == "ok" for r in rows) else 1


def register(sub) -> None:
    p = sub.add_parser("ota", help="update nodes over MQTT: canary first, then the rest")
    p.add_argument("--bundle", default="build/bundle.ota")
    p.add_argument("--secret", default="fleet.secret")
    p.add_argument("--nodes", required=True, help="base-topic pattern, e.g. 'Haus/*'")
    p.add_argument("--broker", default="127.0.0.1:1883")
    p.add_argument("--user", default=None, help="broker user name")
    p.add_argument(
        "--password",
        default=os.environ.get("MQTT_PASSWORD"),
        help="broker password (default: $MQTT_PASSWORD, which keeps it out of `ps`)",
    )
    p.add_argument(
        "--wait-s", type=positive, default=5.0, help="longest wait for the broker to list nodes"
    )
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--confirm-s", type=float, default=180.0)
    p.set_defaults(func=cmd_ota)
