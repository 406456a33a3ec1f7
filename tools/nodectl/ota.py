"""Send an update bundle to nodes over their broker: canary first, then the rest a few at a
time; one result per message from the node drives the next chunk (stop and wait).

    nodectl ota --bundle build/bundle.ota --secret fleet.secret --nodes 'Haus/*' --broker h:1883
"""

from __future__ import annotations

import fnmatch
import json
import queue
import sys
import threading
from pathlib import Path

from nodectl import bundle
from nodectl.common import Refused, ToolFailed

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
        self.lock = threading.Lock()
        self.c.on_message = self._on
        try:
            self.c.connect(host, port, 30)
        except OSError as e:
            raise ToolFailed(f"broker {host}:{port}: {e}") from None
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

    def watch(self, base: str):
        self.q[base] = queue.Queue(maxsize=64)
        self.c.subscribe(base + "/ota/result", 1)
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
    """After the switch: the node's retained ota/state until it confirms or rolls back."""
    import time

    s.c.subscribe(base + "/ota/state", 1)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with s.lock:
            raw = s.seen.get(base, {}).get("state")
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
    version = json.loads(body)["version"]
    out: dict[str, str] = {}

    def one(b):
        ok, why = update(s, b, bundle.sign(body, bundle.node_key(secret, b)), blob, progress)
        out[b] = wait_state(s, b, version, confirm_s) if ok else "refused: " + why

    one(bases[0])
    if out[bases[0]] != "ok":
        for b in bases[1:]:
            out[b] = "skipped (canary failed)"
        return out
    rest = bases[1:]
    for i in range(0, len(rest), batch):
        ts = [threading.Thread(target=one, args=(b,)) for b in rest[i : i + batch]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return out


def find_nodes(s: Session, pattern: str, wait_s: float = 2.0) -> list[str]:
    import time

    s.c.subscribe("+/+/info", 1)
    s.c.subscribe("+/info", 1)
    s.c.subscribe("+/+/+/info", 1)
    time.sleep(wait_s)  # retained info arrives at once after subscribing
    with s.lock:
        return sorted(b for b in s.seen if fnmatch.fnmatchcase(b, pattern))


def cmd_ota(args) -> int:
    body, blob = bundle.read(Path(args.bundle))
    secret = Path(args.secret).read_bytes().strip()
    host, _, port = args.broker.partition(":")
    s = Session(host, int(port or 1883), args.user)
    try:
        bases = find_nodes(s, args.nodes)
        if not bases:
            raise Refused(f"no node matches {args.nodes!r} on {args.broker}")
        res = rollout(s, bases, body, blob, secret, args.batch, args.confirm_s)
    finally:
        s.close()
    sys.stderr.write("\n")
    for b, r in res.items():
        print(f"{b}: {r}")
    return 0 if all(r == "ok" for r in res.values()) else 1


def register(sub) -> None:
    p = sub.add_parser("ota", help="update nodes over MQTT: canary first, then the rest")
    p.add_argument("--bundle", default="build/bundle.ota")
    p.add_argument("--secret", default="fleet.secret")
    p.add_argument("--nodes", required=True, help="base-topic pattern, e.g. 'Haus/*'")
    p.add_argument("--broker", default="127.0.0.1:1883")
    p.add_argument("--user", default=None)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--confirm-s", type=float, default=180.0)
    p.set_defaults(func=cmd_ota)
