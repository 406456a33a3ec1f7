"""Home Assistant MQTT discovery: one retained config message per published quantity.

Ids use HA's alphabet ``[a-zA-Z0-9_-]`` (``slug("Küche") == "kueche"``); the unique id is the
MAC plus sensor and quantity, so it stays stable across renames of the base topic. Availability
lists the node and the sensor ("all" must be online). `expire_after` is the longest gap the
quantity's filters allow between two publishes (`longest_gap`) plus 1.5 intervals, so a silent
node turns unavailable without flapping on one missed reading; a `delta` filter without a
`heartbeat` has no such bound and gets no `expire_after`. The node calls `Announcer.step()`
from its loop: one message per step, and after ``homeassistant/status`` says ``online`` the
whole set again after a random delay (so a house full of nodes does not answer HA's restart at
the same instant). Configs announced before but no longer in the set (a sensor removed or
renamed) are cleared with an empty retained payload first; the node keeps the announced topics
in a small file (`read_announced`/`write_announced`).

    a = Announcer(cfg, topics, mac_hex="a4cf12345678", fw="1.0.0")
    a.forget(read_announced())        # what an earlier boot announced
    a.schedule(now_ms, delay_ms=0)
    topic, payload = a.step(now_ms)   # or None; payload "" clears a stale config
    # after a.rounds went up: write_announced(a.announced())
"""

import json

# quantity -> (device_class, unit); None device_class: plain sensor
CLASSES = {
    "temperature": ("temperature", "\u00b0C"),
    "humidity": ("humidity", "%"),
    "pressure": ("atmospheric_pressure", "hPa"),
    "illuminance": ("illuminance", "lx"),
    "voltage": ("voltage", "V"),
    "state": (None, None),
    "count": (None, None),
    "total": (None, None),
}

_TRANSLIT = {
    "\u00e4": "ae",
    "\u00f6": "oe",
    "\u00fc": "ue",
    "\u00df": "ss",
    "\u00c4": "ae",
    "\u00d6": "oe",
    "\u00dc": "ue",
    "\u00e9": "e",
    "\u00e8": "e",
    "\u00e0": "a",
    "\u00e7": "c",
    "\u00f8": "oe",
    "\u00e5": "aa",
    "\u00e6": "ae",
}


def slug(s):
    """Lowercase id in HA's alphabet: "Küche/Decke" -> "kueche_decke"."""
    out = []
    sep = False
    for ch in s:
        ch = _TRANSLIT.get(ch, ch)
        for c in ch.lower():
            if "a" <= c <= "z" or "0" <= c <= "9":
                if sep and out:
                    out.append("_")
                out.append(c)
                sep = False
            else:
                sep = True  # runs of anything else become one "_", none at the ends
    return "".join(out)


def config_topic(prefix, mac_hex, sensor, quantity):
    # <prefix>/sensor/<node_id>/<object_id>/config, HA 2021.x+ form
    return "%s/sensor/%s/%s_%s/config" % (prefix, mac_hex, slug(sensor), slug(quantity))


def unique_id(mac_hex, sensor, quantity):
    return "%s_%s_%s" % (mac_hex, slug(sensor), slug(quantity))


# The file that remembers which discovery configs this node announced (one topic a line),
# bounded: a node has at most 8 sensors with a few quantities each.
ANNOUNCED_FILE = "discovery.txt"
MAX_ANNOUNCED = 64


def longest_gap(q, interval):
    """Longest time in seconds between two publishes the quantity's filters allow, or None.

    Readings come every `interval` s; `throttle` holds values back up to its `seconds`, a
    `delta` filter for as long as the value stays put (no bound) unless a `heartbeat` forces a
    publish once its `seconds` have passed (checked at the next reading)."""
    hb = thr = None
    delta = False
    for f in q.get("filters", ()):
        t = f.get("type")
        if t == "heartbeat":
            hb = f["seconds"]
        elif t == "throttle":
            thr = f["seconds"]
        elif t == "delta":
            delta = True

    def up(s):  # the first reading at or after s seconds
        return -(-s // interval) * interval

    if hb is not None:
        return up(hb) if (delta or thr is not None) else interval
    if delta:
        return None
    if thr is not None:
        return max(interval, up(thr))
    return interval


def expire_after(q, interval):
    """HA's expire_after for a quantity: longest gap plus 1.5 intervals; None when unbounded."""
    g = longest_gap(q, interval)
    return None if g is None else int(g + interval * 3 // 2)


def read_announced(path=ANNOUNCED_FILE):
    """Topics announced by an earlier boot ([] when the file is missing or unreadable)."""
    out = []
    try:
        with open(path) as f:
            for _ in range(MAX_ANNOUNCED):
                line = f.readline()
                if not line:
                    break
                line = line.strip()
                if line and len(line) <= 256 and line.endswith("/config"):
                    out.append(line)
    except (OSError, ValueError, UnicodeError):
        return []
    return out


def write_announced(topics, path=ANNOUNCED_FILE):
    """Remember the announced topics (at most MAX_ANNOUNCED); atomic: old or new file."""
    import os

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for t in topics[:MAX_ANNOUNCED]:
            f.write(t + "\n")
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)


def payload(cfg, topics, mac_hex, sensor, quantity, q, fw="0", interval=None):
    """The discovery config for one quantity, as a JSON string."""
    dc, unit = CLASSES.get(quantity, (None, None))
    if interval is None:
        interval = sensor["interval"]
        if cfg["deep_sleep"]["enabled"]:
            interval = max(interval, cfg["deep_sleep"]["interval"])
    exp = expire_after(q, interval)
    d = {
        "name": quantity[0].upper()
        + quantity[1:]
        + ("" if len(cfg["sensors"]) < 2 else " " + sensor["name"]),
        "unique_id": unique_id(mac_hex, sensor["name"], quantity),
        "state_topic": topics.value(q["topic"]),
        "availability": [
            {"topic": topics.status},
            {"topic": topics.sensor_status(sensor["name"])},
        ],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
        "suggested_display_precision": q["decimals"],
        "device": {
            "identifiers": [mac_hex],
            "name": cfg["name"],
            "suggested_area": cfg["area"],
            "model": cfg["board"],
            "sw_version": fw,
            "connections": [["mac", ":".join(mac_hex[i : i + 2] for i in range(0, 12, 2))]],
        },
    }
    if exp is not None:
        d["expire_after"] = exp
    if dc:
        d["device_class"] = dc
    if unit:
        d["unit_of_measurement"] = unit
    if quantity == "total":
        d["state_class"] = "total_increasing"
    else:
        d["state_class"] = "measurement"
    return json.dumps(d)


class Announcer:
    """Publishes the discovery set one message per step, on schedule."""

    def __init__(self, cfg, topics, mac_hex, fw="0", rand=None):
        self.cfg = cfg
        self.topics = topics
        self.mac = mac_hex
        self.fw = fw
        self._due = None  # ticks_ms when the next round starts; None = nothing planned
        self._i = 0  # index into the flattened list
        self._items = []
        for s in cfg["sensors"]:
            for qn in s["quantities"]:
                q = s["quantities"][qn]
                if q.get("publish", True):
                    self._items.append((s, qn, q))
        self._clear = []  # stale config topics still to clear, popped from the end
        self.rounds = 0
        if rand is None:
            import random

            rand = random.getrandbits
        self._rand = rand

    def announced(self):
        """The config topics of the current set (what to remember for the next boot)."""
        pre = self.cfg["discovery"]["prefix"]
        return [config_topic(pre, self.mac, s["name"], qn) for s, qn, _ in self._items]

    def forget(self, previous):
        """Clear (empty retained payload) every topic in `previous` not in the current set.

        The clearing messages go out first in the next round. Returns how many."""
        cur = self.announced()
        self._clear = [t for t in previous[:MAX_ANNOUNCED] if t not in cur]
        return len(self._clear)

    @property
    def status_topic(self):
        return self.cfg["discovery"]["prefix"] + "/status"

    def schedule(self, now, delay_ms=0):
        from time import ticks_add

        self._due = ticks_add(now, delay_ms)
        self._i = 0

    def on_ha_status(self, msg, now):
        """HA (re)started: send the whole set again after a random 1..10 s."""
        if msg == b"online" or msg == "online":
            self.schedule(now, 1000 + self._rand(16) % 9000)

    def pending(self):
        return self._due is not None

    def step(self, now):
        """(topic, payload) to publish retained now, or None."""
        from time import ticks_diff

        if self._due is None or ticks_diff(now, self._due) < 0:
            return None
        if self._clear:
            return self._clear.pop(), ""
        if self._i >= len(self._items):
            self._due = None
            self.rounds += 1
            return None
        s, qn, q = self._items[self._i]
        self._i += 1
        return (
            config_topic(self.cfg["discovery"]["prefix"], self.mac, s["name"], qn),
            payload(self.cfg, self.topics, self.mac, s, qn, q, self.fw),
        )
