"""Home Assistant MQTT discovery: one retained config message per published quantity.

Ids use HA's alphabet ``[a-zA-Z0-9_-]`` (``slug("Küche") == "kueche"``); the unique id is the
MAC plus sensor and quantity, so it stays stable across renames of the base topic. Availability
lists the node and the sensor ("all" must be online). `expire_after` is 2.5 x the interval so
a silent node turns unavailable without flapping on one missed reading. The node calls
`Announcer.step()` from its loop: one message per step, and after ``homeassistant/status``
says ``online`` the whole set again after a random delay (so a house full of nodes does not
answer HA's restart at the same instant).

    a = Announcer(cfg, topics, mac_hex="a4cf12345678", fw="1.0.0")
    a.schedule(now_ms, delay_ms=0)
    topic, payload = a.step(now_ms)   # or None
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


def payload(cfg, topics, mac_hex, sensor, quantity, q, fw="0", interval=None):
    """The discovery config for one quantity, as a JSON string."""
    dc, unit = CLASSES.get(quantity, (None, None))
    if interval is None:
        interval = sensor["interval"]
        if cfg["deep_sleep"]["enabled"]:
            interval = max(interval, cfg["deep_sleep"]["interval"])
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
        "expire_after": int(interval * 5 // 2),
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
        self.rounds = 0
        if rand is None:
            import random

            rand = random.getrandbits
        self._rand = rand

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
