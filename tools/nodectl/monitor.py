"""nodectl monitor: a live table of one node's MQTT topics (availability, values, diagnostics).

On a terminal the table is redrawn every second; piped, each message is printed as one line the
moment it arrives (flushed), and the final table follows when it stops: after --duration, on
Ctrl-C or on SIGTERM. `--once` prints one table as soon as the retained state has arrived.

    python tools/nodectl monitor --broker 192.168.1.10:1883 --base Erdgeschoss/Wohnzimmer
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from nodectl.common import (
    EXIT_OK,
    EXIT_REFUSED,
    Refused,
    ToolFailed,
    connect_error,
    parse_broker,
    positive,
)

AVAILABILITY_WORDS = {"online", "offline", "sleeping"}
# The node's reserved subtopics (lib/node/app.py): B/status, B/status/<sensor>, B/diag, B/info,
# B/cmd, B/result, B/backlog; everything else under B is a value (B/Temp, B/json ...).
KINDS = {
    "status": "availability",
    "diag": "diagnostics",
    "info": "diagnostics",
    "cmd": "command",
    "result": "command",
    "backlog": "backlog",
}
KIND_ORDER = ("availability", "value", "diagnostics", "backlog", "command")


def classify(rel: str, payload: str) -> str:
    first = rel.split("/")[0]
    if first in KINDS:
        return KINDS[first]
    if payload.strip().lower() in AVAILABILITY_WORDS:
        return "availability"
    return "value"


class NodeView:
    """What we know of one node: each topic under its base, last payload and when it came."""

    def __init__(self, base: str, clock=time.monotonic):
        self.base = base.rstrip("/")
        self.clock = clock
        self.topics: dict[str, tuple[str, float, bool]] = {}

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        rel = topic[len(self.base) + 1 :] if topic.startswith(self.base + "/") else topic
        self.topics[rel] = (payload.decode("utf-8", "replace"), self.clock(), retained)

    def availability(self) -> str | None:
        """The node's own B/status (not a sensor's B/status/<name>)."""
        got = self.topics.get("status")
        return got[0].strip().lower() if got else None

    def node_gone(self, rel: str, payload: str) -> bool:
        """A sensor's availability row that the node's own offline status overrides."""
        return (
            rel.startswith("status/")
            and payload.strip().lower() == "online"
            and self.availability() == "offline"
        )

    def rows(self) -> list[tuple[str, str, str, str]]:
        now = self.clock()
        rows = []
        for rel in sorted(self.topics):
            payload, at, retained = self.topics[rel]
            kind = classify(rel, payload)
            age = "retained" if retained else f"{now - at:.0f}s"
            if self.node_gone(rel, payload):
                # B/status/<sensor> is retained "online" from before the node's will said
                # B/status offline: nothing is reading that sensor now.
                payload = "offline (node offline)"
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc:
                for k in sorted(doc):
                    rows.append((kind, f"{rel}.{k}", json.dumps(doc[k]), age))
            else:
                rows.append((kind, rel, payload, age))
        rows.sort(key=lambda r: (KIND_ORDER.index(r[0]), r[1]))
        return rows

    def render(self) -> str:
        avail = self.availability()
        head = f"node {self.base}: {avail.upper() if avail else 'availability unknown'}"
        rows = self.rows()
        if not rows:
            return head + "\n(no messages yet)\n"
        widths = [
            max(len(r[i]) for r in rows + [("KIND", "TOPIC", "VALUE", "AGE")]) for i in range(4)
        ]
        widths[2] = min(widths[2], 48)
        fmt = "{:<%d}  {:<%d}  {:<%d}  {:>%d}" % tuple(widths)
        lines = [head, fmt.format("KIND", "TOPIC", "VALUE", "AGE")]
        for kind, topic, value, age in rows:
            lines.append(
                fmt.format(kind, topic, value if len(value) <= 48 else value[:45] + "...", age)
            )
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        return {
            "base": self.base,
            "availability": self.availability(),
            "topics": {
                rel: {"payload": p, "kind": classify(rel, p), "retained": r}
                for rel, (p, _, r) in sorted(self.topics.items())
            },
        }


def check_base(base: str) -> str:
    b = (base or "").strip().rstrip("/")
    if not b:
        raise Refused(
            "--base: no base topic given (BASE= is empty); "
            "name the node's topic, e.g. --base Erdgeschoss/Wohnzimmer"
        )
    if "#" in b or "+" in b:
        raise Refused(f"--base {base}: a node's base topic, without the wildcards + and #")
    return b


class _Stop(Exception):
    """SIGTERM: stop as Ctrl-C does, printing what was gathered."""


def cmd_monitor(args) -> int:
    import paho.mqtt.client as mqtt

    base = check_base(args.base)
    if args.broker is not None:
        args.host, args.port = parse_broker(args.broker, args.port)
    view = NodeView(base)
    last_msg = [time.monotonic()]
    refused: list[str] = []
    live = sys.stdout.isatty() and not args.once and not args.json
    stream = not live and not args.once and not args.json
    out_lock = threading.Lock()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"nodectl-monitor-{os.getpid()}"
    )
    if args.user:
        client.username_pw_set(args.user, args.password)
    if args.tls or args.ca:
        client.tls_set(ca_certs=args.ca)

    def on_connect(c, userdata, flags, reason, props):
        if reason.is_failure:
            refused.append(str(reason))
            c.disconnect()
            return
        c.subscribe(view.base + "/#", qos=0)

    def on_message(c, userdata, msg):
        view.on_message(msg.topic, msg.payload, bool(msg.retain))
        last_msg[0] = time.monotonic()
        if stream:
            text = msg.payload.decode("utf-8", "replace")
            with out_lock:
                print(
                    "%s  %s  %s%s"
                    % (
                        time.strftime("%H:%M:%S"),
                        msg.topic,
                        text if len(text) <= 160 else text[:157] + "...",
                        "  (retained)" if msg.retain else "",
                    ),
                    flush=True,
                )

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as e:
        raise ToolFailed(connect_error(args.host, args.port, e)) from None

    def on_term(signum, frame):
        raise _Stop

    old_term = signal.signal(signal.SIGTERM, on_term)
    client.loop_start()
    t0 = time.monotonic()
    try:
        while not refused:
            time.sleep(0.1)
            now = time.monotonic()
            if args.once and (
                now - last_msg[0] >= args.settle and view.topics or now - t0 >= args.wait
            ):
                break
            if args.duration and now - t0 >= args.duration:
                break
            if live and int((now - t0) * 10) % 10 == 0:
                sys.stdout.write("\x1b[H\x1b[2J" + view.render())
                sys.stdout.flush()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        client.disconnect()  # wakes the network thread, so loop_stop returns at once
        client.loop_stop()
    if refused:
        raise ToolFailed(
            f"the broker at {args.host}:{args.port} refused the connection: {refused[0]}"
            + (" (check --user/--password)" if "author" in refused[0].lower() else "")
        )
    with out_lock:
        if args.json:
            print(json.dumps(view.as_json(), indent=2), flush=True)
        elif not live or args.once:
            print(view.render(), end="", flush=True)
    if not view.topics:
        print(f"nothing received under {view.base}/#", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_REFUSED if view.availability() == "offline" else EXIT_OK


def register(sub) -> None:
    s = sub.add_parser("monitor", help="live table of a node's MQTT topics")
    s.add_argument("--base", required=True, help="the node's base topic, e.g. home/kitchen/node-1")
    s.add_argument("--host", default="localhost")
    s.add_argument("--broker", help="HOST[:PORT], instead of --host/--port")
    s.add_argument("--port", type=int, default=1883)
    s.add_argument("--user", help="broker user name")
    s.add_argument(
        "--password",
        default=os.environ.get("MQTT_PASSWORD"),
        help="broker password (default: $MQTT_PASSWORD, which keeps it out of `ps`)",
    )
    s.add_argument("--tls", action="store_true")
    s.add_argument("--ca", help="CA certificate for TLS")
    s.add_argument(
        "--once",
        action="store_true",
        help="print one table once the retained state has arrived, then exit",
    )
    s.add_argument(
        "--wait", type=positive, default=5.0, help="--once: give up after this many seconds"
    )
    s.add_argument(
        "--settle", type=positive, default=0.5, help="--once: quiet time that ends the wait"
    )
    s.add_argument("--duration", type=positive, help="run this many seconds, then print the table")
    s.add_argument("--json", action="store_true", help="print the final state as JSON")
    s.set_defaults(func=cmd_monitor)
