"""Home Assistant MQTT discovery: one retained config message per published quantity.

Ids use HA's alphabet ``[a-zA-Z0-9_-]`` (``slug("Küche") == "kueche"``); the unique id is the
MAC plus sensor and quantity, so it stays stable across renames of the base topic. Availability
lists the node and the sensor ("all" must be online). `expire_after` is the longest gap the
quantity's filters allow between two publishes plus 1.5 intervals (so one missed reading does
not flap), and left out when a `delta` filter without `heartbeat` allows no bound. The node
calls `Announcer.step()` from its loop: one message per step, and after
``homeassistant/status`` says ``online`` the whole set again after a random delay (so a house
full of nodes does not answer HA's restart at the same instant). The ids announced last are
kept in a small file; one no longer configured (a sensor removed or renamed) gets an empty
retained config first, which makes HA delete the entity.

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


MEMORY = "discovery.json"  # {"prefix": .., "ids": [object ids]} as last announced
MAX_IDS = 40  # 8 sensors x 5 quantities; ids beyond are not remembered (never cleared later)
MAX_DELAY_MS = 10000  # a round is never planned further ahead (HA's birth: 1..10 s)


def object_id(sensor, quantity):
    return "%s_%s" % (slug(sensor), slug(quantity))


def longest_gap(q, interval):
    """Most seconds the quantity's filters let pass between two publishes; None: no bound.

    Readings come every `interval` s and the gate decides at a reading, so a wait of `seconds`
    ends at the first reading after it. `delta` may hold a steady value back for ever unless a
    `heartbeat` forces it out; `throttle` only spaces publishes out.
    """
    hb = thr = None
    delta = False
    for f in q.get("filters", ()):
        t = f["type"]
        if t == "heartbeat":
            hb = f["seconds"]
        elif t == "throttle":
            thr = f["seconds"]
        elif t == "delta":
            delta = True
    if delta:
        if hb is None:
            return None
        wait = hb
    else:
        wait = thr or interval
    return -(-wait // interval) * interval  # rounded up to whole intervals


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
    gap = longest_gap(q, interval)
    if gap is not None:
        d["expire_after"] = gap + interval * 3 // 2
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

    def __init__(self, cfg, topics, mac_hex, fw="0", rand=None, memory=MEMORY):
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
        self._memory = memory
        self._saved = None  # the memory file's content as read or last written
        self._clear = []  # config topics of ids announced before and no longer configured
        self._ids = [object_id(s["name"], qn) for s, qn, _ in self._items][:MAX_IDS]
        self._load_memory()
        self.rounds = 0
        if rand is None:
            import random

            rand = random.getrandbits
        self._rand = rand

    def _load_memory(self):
        try:
            with open(self._memory) as f:
                m = json.load(f)
            old_prefix, old = m["prefix"], m["ids"][:MAX_IDS]
        except (OSError, ValueError, KeyError, TypeError):
            return  # none yet, or unreadable: nothing known to clear
        self._saved = m
        new_prefix = self.cfg["discovery"]["prefix"]
        for oid in old:
            if old_prefix != new_prefix or oid not in self._ids:
                self._clear.append("%s/sensor/%s/%s/config" % (old_prefix, self.mac, oid))

    def _save_memory(self):
        m = {"prefix": self.cfg["discovery"]["prefix"], "ids": self._ids}
        if self._saved == m:
            return  # unchanged: no flash write
        from node import cfgfile, cold

        try:
            cfgfile.save_json(self._memory, m)  # atomic: a power cut keeps the old list
            self._saved = m
        except OSError:
            pass  # flash full or read-only: the ids are cleared on a later boot, or never
        cold.unload("node.cfgfile")  # rare: not worth its heap afterwards

    @property
    def status_topic(self):
        return self.cfg["discovery"]["prefix"] + "/status"

    def schedule(self, now, delay_ms=0):
        from time import ticks_add

        self._due = ticks_add(now, min(delay_ms, MAX_DELAY_MS))
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

        if self._due is None:
            return None
        # Steps stop while offline: a round planned before an outage of more than 6.2 days
        # would look a week away. Never planned more than MAX_DELAY_MS ahead, so further is past.
        d = ticks_diff(now, self._due)
        if d < 0 and d >= -MAX_DELAY_MS:
            return None
        if self._clear:
            return (self._clear.pop(), "")  # empty and retained: HA removes the entity
        if self._i >= len(self._items):
            self._due = None
            self.rounds += 1
            self._save_memory()
            return None
        s, qn, q = self._items[self._i]
        self._i += 1
        return (
            config_topic(self.cfg["discovery"]["prefix"], self.mac, s["name"], qn),
            payload(self.cfg, self.topics, self.mac, s, qn, q, self.fw),
        )
