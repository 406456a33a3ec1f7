"""Schema primitives for config.json: constants of the format and the checker that collects
messages ("<path>: expected <form>, got <value>"). The document walk is in config.py (top
level) and schema_sensors.py (sensors, quantities, filters), split so each module stays small
enough to compile on the device.

    from node.schema import TYPES, parse_i2c_address
    parse_i2c_address("0x76")   # 118
"""

import json

VERSION = 1

# type -> (bus kind, quantities it can report). Kept here rather than imported from the driver
# registry so validation never pulls driver code into the heap.
TYPES = {
    "bme280": ("i2c", ("temperature", "humidity", "pressure")),
    "bmp280": ("i2c", ("temperature", "pressure")),
    "sht3x": ("i2c", ("temperature", "humidity")),
    "sht4x": ("i2c", ("temperature", "humidity")),
    "aht20": ("i2c", ("temperature", "humidity")),
    "bh1750": ("i2c", ("illuminance",)),
    "ds18b20": ("onewire", ("temperature",)),
    "dht22": ("pin", ("temperature", "humidity")),
    "adc": ("adc", ("voltage",)),
    "digital": ("pin", ("state",)),
    "pulse": ("pin", ("count", "total")),
}

# Default subtopic per quantity (under the base topic): Erdgeschoss/Wohnzimmer/Temp
SUBTOPIC = {
    "temperature": "Temp",
    "humidity": "Hum",
    "pressure": "Press",
    "illuminance": "Lux",
    "voltage": "Volt",
    "state": "State",
    "count": "Count",
    "total": "Total",
}
DECIMALS = {
    "temperature": 1,
    "humidity": 0,
    "pressure": 1,
    "illuminance": 0,
    "voltage": 2,
    "state": 0,
    "count": 0,
    "total": 3,
}

FILTERS = ("median", "average", "ema", "delta", "throttle", "heartbeat", "clamp", "round")

# Reserved subtopics the node uses itself; a quantity may not be published there.
RESERVED = ("status", "json", "backlog", "cmd", "result", "diag", "info")

_I2C_FORM = 'an I2C address like "0x76"'


def _got(v):
    try:
        return json.dumps(v)
    except Exception:  # noqa: BLE001
        return repr(v)


class _Checker:
    """Walks one document; collects messages and builds the normalized copy."""

    def __init__(self):
        self.msgs = []

    def bad(self, path, form, value):
        self.msgs.append("%s: expected %s, got %s" % (path, form, _got(value)))

    def missing(self, path, form):
        self.msgs.append("%s: missing, expected %s" % (path, form))

    def extra(self, path, obj, allowed):
        for k in obj:
            if k not in allowed:
                self.msgs.append(
                    "%s: unknown key (allowed: %s)" % (_join(path, k), ", ".join(allowed))
                )

    def obj(self, path, v, allowed=None):
        if not isinstance(v, dict):
            self.bad(path, "an object {...}", v)
            return False
        if allowed is not None:
            self.extra(path, v, allowed)
        return True

    def integer(self, path, v, lo, hi):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or v > hi:
            self.bad(path, "an integer %d..%d" % (lo, hi), v)
            return False
        return True

    def number(self, path, v, lo=None, hi=None, form=None):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
        if ok and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            ok = False
        if not ok:
            if form is None:
                if lo is not None and hi is not None:
                    form = "a number %s..%s" % (_num(lo), _num(hi))
                elif lo is not None:
                    form = "a number >= %s" % _num(lo)
                else:
                    form = "a number"
            self.bad(path, form, v)
        return ok

    def boolean(self, path, v):
        if not isinstance(v, bool):
            self.bad(path, "true or false", v)
            return False
        return True

    def string(self, path, v, lo=1, hi=64, form=None):
        if not isinstance(v, str) or len(v) < lo or len(v) > hi:
            self.bad(path, form or ("a string of %d..%d characters" % (lo, hi)), v)
            return False
        return True


def _num(x):
    return str(int(x)) if x == int(x) else str(x)


def _join(path, key):
    return key if not path else path + "." + key


def _topic_ok(t, allow_slash=True):
    if not t or len(t) > 200:
        return False
    if "+" in t or "#" in t or "\x00" in t or t[0] == "/" or t[-1] == "/" or "//" in t:
        return False
    if t[0] == "$":
        return False
    return allow_slash or "/" not in t


def _slug_ok(s):
    for ch in s:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_" or ch == "-"):
            return False
    return len(s) > 0


def parse_i2c_address(v):
    """Return the 7-bit address from "0x76", 118 or "118"; None when it is not one."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        a = v
    elif isinstance(v, str):
        s = v.strip().lower()
        try:
            if s.startswith("0x") and len(s) > 2:
                a = int(s[2:], 16)
            elif s.isdigit():
                a = int(s)
            else:
                return None
        except ValueError:
            return None
    else:
        return None
    return a if 0x08 <= a <= 0x77 else None
