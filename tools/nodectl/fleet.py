"""nodectl fleet: every node on the broker and where it stands, read from what each node keeps
retained there: <base>/info (firmware, safe mode; once per boot), <base>/status (online,
offline, sleeping; the will says offline), <base>/diag (uptime, RSSI, free heap, the node's
clock "t"; every diag interval) and <base>/ota/state (running version and update state).
Nothing is asked of the nodes, so a node that is off still shows its last figures and how long
ago they were sent.

    python tools/nodectl fleet --broker pi.lan:1883            # a table
    python tools/nodectl fleet --broker pi.lan:1883 --json     # for scripts

    view = fleet.FleetView()
    view.on_message("Haus/Bad/status", b"online", True, time.time())
    rows = view.rows()
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import threading
import time

from nodectl.common import (
    EXIT_OK,
    Refused,
    ToolFailed,
    connect_error,
    parse_broker,
    positive,
)

DEPTH = 6  # base topics of 1..DEPTH levels are found (Erdgeschoss/Wohnzimmer is 2)
PARTS = ("info", "status", "diag", "ota/state")
SETTLE_S = 0.3  # quiet time after the subscription is granted: the retained burst is over
SAFE_W = 28  # the safe-mode reason's width in the table
UPDATE = {"trial": "trial", "ok": "ok", "rolled back": "rolled back"}  # anything else: "-"
COLUMNS = (
    ("NODE", "node"),
    ("VERSION", "version"),
    ("ONLINE", "online"),
    ("UPTIME", "uptime_s"),
    ("LAST SEEN", "last_seen"),
    ("RSSI", "rssi"),
    ("HEAP", "heap_free"),
    ("SAFE MODE", "safe_mode"),
    ("UPDATE", "update"),
)


def filters() -> list[str]:
    """One wildcard filter per part and depth: never "#", which on a shared broker would pull
    in every retained message of every other system."""
    return ["+/" * d + p for p in PARTS for d in range(1, DEPTH + 1)]


def split(topic: str) -> tuple[str, str] | None:
    """(base, part) of a node topic, or None."""
    for p in PARTS:
        if topic.endswith("/" + p) and len(topic) > len(p) + 1:
            return topic[: -len(p) - 1], p
    return None


def _doc(raw: bytes | None) -> dict:
    if not raw:
        return {}
    try:
        d = json.loads(raw)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _num(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class FleetView:
    """What the broker holds per base topic. Fed by on_message; bounded by the retained set
    (one message kept per node and part: a newer one replaces it)."""

    def __init__(self):
        self.parts: dict[str, dict[str, bytes]] = {}
        self.heard: dict[str, int] = {}  # base -> unix s a message arrived live (not retained)
        self.lock = threading.Lock()

    def on_message(self, topic: str, payload: bytes, retained: bool, now: float) -> None:
        s = split(topic)
        if s is None:
            return
        base, part = s
        with self.lock:
            self.parts.setdefault(base, {})[part] = bytes(payload)
            if not retained:
                self.heard[base] = int(now)

    def bases(self) -> list[str]:
        """Base topics that are our nodes: their info or diag names a firmware version (an
        "info" or "status" topic of another system is not a node)."""
        with self.lock:
            return sorted(
                b
                for b, d in self.parts.items()
                if "fw" in _doc(d.get("info")) or "fw" in _doc(d.get("diag"))
            )

    def row(self, base: str) -> dict:
        with self.lock:
            d = dict(self.parts.get(base, {}))
            heard = self.heard.get(base)
        info, diag, st = _doc(d.get("info")), _doc(d.get("diag")), _doc(d.get("ota/state"))
        status = d.get("status", b"").decode("utf-8", "replace") or None
        version = st.get("version") or info.get("fw") or diag.get("fw")
        seen = [t for t in (_num(diag.get("t")), heard) if t is not None]
        return {
            "node": base,
            "version": version,
            "online": status,
            "uptime_s": _num(diag.get("uptime")),
            "last_seen": max(seen) if seen else None,  # unix s: the node's diag clock, or arrival
            "rssi": _num(diag.get("rssi")),
            "heap_free": _num(diag.get("heap_free")),
            "safe_mode": info.get("safe_mode") or diag.get("safe_mode") or None,
            "update": UPDATE.get(st.get("update")),
        }

    def rows(self, pattern: str = "*") -> list[dict]:
        return [self.row(b) for b in self.bases() if fnmatch.fnmatchcase(b, pattern)]


def span(s: int | None) -> str:
    """Seconds as the two largest units: 45s, 12m 5s, 3h 20m, 41d 2h."""
    if s is None:
        return "-"
    s = max(s, 0)
    for unit, sub, a, b in (
        (86400, 3600, "d", "h"),
        (3600, 60, "h", "m"),
        (60, 1, "m", "s"),
    ):
        if s >= unit:
            return "%d%s %d%s" % (s // unit, a, s % unit // sub, b)
    return "%ds" % s


def render(rows: list[dict], now: float) -> str:
    """The table for humans; last seen is an age against now (unix s)."""

    def cell(r, key):
        v = r[key]
        if key == "uptime_s":
            return span(v)
        if key == "last_seen":
            return "-" if v is None else ("now" if now - v < 1 else span(int(now - v)) + " ago")
        if key == "rssi" and v is not None:
            return "%d dBm" % v
        if key == "heap_free" and v is not None:
            return "%d" % v
        if key == "safe_mode" and v is not None:
            v = str(v)
            return v if len(v) <= SAFE_W else v[: SAFE_W - 3] + "..."  # --json has it whole
        return "-" if v is None else str(v)

    table = [[h for h, _ in COLUMNS]] + [[cell(r, k) for _, k in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in table
    )


def scan(host: str, port: int, user=None, password=None, wait_s: float = 5.0, clock=time.time):
    """Connect, subscribe to the node topics, and gather the retained set: done when the
    broker has granted the subscription and then been quiet for SETTLE_S, or after wait_s in
    all. A broker that refuses or does not answer in wait_s raises ToolFailed."""
    import paho.mqtt.client as mqtt  # here: every other subcommand runs without paho

    view = FleetView()
    granted = threading.Event()
    refused: list[str] = []
    last = [time.monotonic()]
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="nodectl-fleet-%d" % os.getpid())
    if user:
        c.username_pw_set(user, password)

    def on_connect(cl, u, flags, reason, props):
        if reason.is_failure:
            refused.append(str(reason))
            granted.set()
            return
        cl.subscribe([(f, 0) for f in filters()])

    def on_subscribe(cl, u, mid, reasons, props):
        last[0] = time.monotonic()
        granted.set()

    def on_message(cl, u, m):
        last[0] = time.monotonic()
        view.on_message(m.topic, m.payload, bool(m.retain), clock())

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect_timeout = min(wait_s, 5.0)
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise ToolFailed(connect_error(host, port, e)) from None
    c.loop_start()
    end = time.monotonic() + wait_s
    try:
        if not granted.wait(wait_s):
            raise ToolFailed(
                f"the broker at {host}:{port} did not answer within {wait_s:g} s "
                "(is it an MQTT broker? try --wait-s)"
            )
        if refused:
            raise ToolFailed(
                f"the broker at {host}:{port} refused the connection: {refused[0]}"
                + (" (check --user/--password)" if "author" in refused[0].lower() else "")
            )
        while time.monotonic() < end and time.monotonic() - last[0] < SETTLE_S:
            time.sleep(0.05)
    finally:
        c.disconnect()  # wakes the network thread, so loop_stop returns at once
        c.loop_stop()
    return view


def cmd_fleet(args) -> int:
    host, port = parse_broker(args.broker)
    view = scan(host, port, args.user, args.password, args.wait_s)
    rows = view.rows(args.nodes)
    if not rows:
        raise Refused(
            f"no node found on {host}:{port}"
            + (f" matching {args.nodes!r}" if args.nodes != "*" else "")
            + " (nodes publish <base>/info retained when they connect)"
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(render(rows, time.time()))
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("fleet", help="every node on the broker: version, online, health, update")
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST[:PORT]")
    p.add_argument("--user", default=None, help="broker user name")
    p.add_argument(
        "--password",
        default=os.environ.get("MQTT_PASSWORD"),
        help="broker password (default: $MQTT_PASSWORD, which keeps it out of `ps`)",
    )
    p.add_argument("--nodes", default="*", help="base-topic pattern, e.g. 'Erdgeschoss/*'")
    p.add_argument(
        "--wait-s", type=positive, default=5.0, help="longest wait for the broker (default 5)"
    )
    p.add_argument("--json", action="store_true", help="a JSON list, one object per node")
    p.set_defaults(func=cmd_fleet)
