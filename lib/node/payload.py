"""Topics and payloads: plain values per quantity, the JSON document, backlog records.

Every number leaves the node through `fmt()`, which refuses nan and infinities, so a failed
or absurd reading can never reach the broker as a number.

    t = Topics("Erdgeschoss/Wohnzimmer")
    t.value("Temp")            # "Erdgeschoss/Wohnzimmer/Temp"
    fmt(21.48, 1)              # "21.5"
    record([("Temp", "21.5")], 1763784000, "bme280")   # '{"t":1763784000,"s":"bme280","Temp":21.5}'
"""


class Topics:
    """All topics of one node, derived from its base topic."""

    def __init__(self, base):
        self.base = base
        self.status = base + "/status"  # node availability: online/offline/sleeping
        self.json = base + "/json"  # optional document with all values
        self.backlog = base + "/backlog"  # replayed spool records (never the live topics)
        self.cmd = base + "/cmd"  # commands in
        self.awake = base + "/cmd/awake"  # retained "stay awake" switch for sleepers
        self.result = base + "/result"  # command results out
        self.diag = base + "/diag"  # periodic diagnostics
        self.info = base + "/info"  # retained, once per boot

    def value(self, sub):
        return self.base + "/" + sub

    def sensor_status(self, name):
        return self.status + "/" + name


def fmt(v, decimals):
    """The plain-text payload for a value; None for nan/inf/None (never publish those)."""
    if v is None or v - v != 0:  # nan, +-inf (see filters.transform for why not math.inf)
        return None
    if isinstance(v, bool):
        v = int(v)
    if decimals <= 0:
        v = round(v)
        s = "%d" % v
    else:
        s = ("%." + str(decimals) + "f") % v
    # "-0.0" reads as a bug to a user; a value that rounds to zero is zero.
    if s[0] == "-" and s.strip("-0.") == "":
        s = s[1:]
    return s


def _esc(s):
    # Minimal JSON string escaping for names we control (keys are validated subtopics).
    if '"' in s or "\\" in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return s


def record(values, t=None, sensor=None, up=None):
    """One JSON object text with formatted values; `t` Unix seconds or None when unsynced.

    `values` is a list of (key, formatted string from fmt()) pairs, kept in that order (a
    MicroPython dict has no stable order), so decimals are exactly as published.
    """
    parts = []
    if t is not None:
        parts.append('"t":%d' % t)
    else:
        parts.append('"t":null,"unsynced":true')
        if up is not None:
            parts.append('"up":%d' % up)
    if sensor is not None:
        parts.append('"s":"%s"' % _esc(sensor))
    for k, v in values:
        parts.append('"%s":%s' % (_esc(k), v))
    return "{" + ",".join(parts) + "}"
