"""Node configuration: versioned schema, validator, and the loader that validates with last-good.

`validate(doc)` returns a list of messages, one per problem, each naming the JSON path and the
expected form (``sensors[1].address: expected an I2C address like "0x76", got "76x"``).
`normalize(doc)` fills in defaults (call it only on a valid doc). `load()` reads config.json
with secrets.json merged over it (node.cfgfile reads every config file, strictly), validates,
and falls back to the last-good copy.

    from node import config
    cfg, source, problems = config.load("config.json", "secrets.json")

Command line (Unix port or device REPL), exit 1 when there are problems, 2 on bad usage:

    micropython -m node.config check config.json [secrets.json]
"""

import json

# Reading, merging and writing the files is node/cfgfile.py's job; this module is the
# validator, which the node loads only to validate and drops again, and which the host tool runs
# as `micropython -m node.config check` with lib/ on MICROPYPATH.
from node.cfgfile import keep_good, load_doc, merge, read_json, save_json  # noqa: F401

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
_SECRETS_HINT = " (WiFi and broker passwords usually live in secrets.json next to config.json)"

MAX_DEPTH = 16  # objects and lists nested deeper than any valid config


def i2c_hint(v):
    """' (did you mean "0x76"?)' for "76" or "0X76 "; "" when there is nothing to suggest."""
    if isinstance(v, str):
        s = v.strip()
        if 1 <= len(s) <= 2:
            try:
                a = int(s, 16)
            except ValueError:
                return ""
            if 0x08 <= a <= 0x77:
                return ' (did you mean "0x%02x"? i2cdetect prints hex without 0x)' % a
        elif s.isdigit() and 0x08 <= int(s) <= 0x77:
            return " (a decimal address is a number without quotes: %s, or 0x%02x)" % (s, int(s))
    return ""


def known_boards():
    """Names of the board files the node can find (boards/*.json, lib/boards/*.json).

    Empty (no check) when a board.json sits next to config.json: the node then uses that file
    whatever the board is called."""
    import os

    try:
        os.stat("board.json")
        return []
    except OSError:
        pass

    dirs = ["boards", "lib/boards"]
    f = globals().get("__file__")
    if f and "/" in f:
        lib = f.rsplit("/", 2)[0]  # .../lib/node/config.py -> .../lib
        dirs.append(lib + "/boards")
        dirs.append(lib + "/../boards")
    out = []
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if n.endswith(".json") and n[:-5] not in out:
                out.append(n[:-5])
    out.sort()
    return out or list(BOARDS)  # no board files found: the boards the node has built in


# The boards node.boardfile has built-in pins for (tests keep this, boardfile.BUILTIN and
# boards/*.json equal).
BOARDS = ("esp32-c3-supermini", "esp32-devkitc", "esp32-s3-devkitc", "lolin-d32", "sim")


def _distance(a, b):
    # Levenshtein, two rows; names are at most 32 characters
    prev = list(range(len(b) + 1))
    for i in range(len(a)):
        cur = [i + 1]
        for j in range(len(b)):
            cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (a[i] != b[j])))
        prev = cur
    return prev[-1]


def _closest_hint(name, known):
    best, bd = None, (1000, 0)
    for k in known:
        d = _distance(name, k)
        if k.startswith(name) or name.startswith(k):
            d = min(d, 2)
        if (d, len(k)) < bd:
            best, bd = k, (d, len(k))
    bd = bd[0]
    if best is None or bd > max(3, len(name) // 2):
        return ""
    return '; did you mean "%s"?' % best


def _shape_problems(doc):
    """Depth and number checks over the whole tree, before the schema walk (no recursion)."""
    msgs = []
    stack = [(doc, "(top)", 0)]
    n = 0
    while stack:
        v, path, depth = stack.pop()
        n += 1
        if n > 4096:
            return msgs + ["(top): more than 4096 values; a config is much smaller"]
        if depth > MAX_DEPTH:
            msgs.append("%s: nested deeper than %d levels" % (path, MAX_DEPTH))
            continue
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    msgs.append("%s: keys must be strings" % path)
                    break
                stack.append((v[k], k if path == "(top)" else path + "." + k, depth + 1))
        elif isinstance(v, list):
            for i in range(len(v)):
                stack.append((v[i], "%s[%d]" % ("" if path == "(top)" else path, i), depth + 1))
        elif isinstance(v, float) and not _finite(v):
            msgs.append(
                "%s: expected a finite number, got %s"
                % (path, "NaN" if v != v else "a number too large for the device")
            )
        elif isinstance(v, int) and not isinstance(v, bool) and not -(2**31) <= v < 2**31:
            msgs.append(
                "%s: expected a number that fits 32 bits, got a %d-digit number"
                % (path, len(str(abs(v))))
            )
        if len(msgs) >= 20:
            break
    msgs.reverse()
    return msgs


def _got(v):
    # Echo at most 60 characters of what the user wrote, with every password inside replaced.
    from node.commands import redact

    try:
        t = json.dumps(redact(v))
    except Exception:  # noqa: BLE001 - non-finite numbers, odd types: still say something
        t = "a value that cannot be shown"
    return t if len(t) <= 60 else t[:57] + "..."


class _Checker:
    """Walks one document; collects messages and builds the normalized copy."""

    def __init__(self):
        self.msgs = []

    def bad(self, path, form, value):
        if _is_secret(path):
            value = _secret_shape(value)
            self.msgs.append("%s: expected %s, got %s" % (path, form, value))
            return
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
        ok = _finite(v)
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
    try:
        return str(int(x)) if x == int(x) else str(x)
    except (OverflowError, ValueError):
        return str(x)


def _finite(v):
    """A real number: not a bool, not NaN, not +-inf (1e999 parses as inf)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or (v == v and v - v == 0)


def _is_secret(path):
    from node.commands import SECRET_KEYS

    return path.split(".")[-1] in SECRET_KEYS


def _secret_shape(v):
    # What may be said about a secret without giving any of it away.
    if isinstance(v, str):
        return "<%d characters>" % len(v)
    if v is None or isinstance(v, bool):
        return json.dumps(v)
    return "a %s" % ("number" if isinstance(v, (int, float)) else "list or object")


def _join(path, key):
    return key if not path else path + "." + key


def _topic_ok(t, allow_slash=True):
    if not t or len(t) > 200:
        return False
    if "+" in t or "#" in t or "\x00" in t or t[0] == "/" or t[-1] == "/" or "//" in t:
        return False
    if t[0] == "$":
        return False
    for ch in t:
        o = ord(ch)
        # "\ud800" from a JSON escape is no UTF-8 a broker accepts (it drops the connection)
        if 0xD800 <= o <= 0xDFFF or o < 0x20 or o == 0x7F:
            return False
    return allow_slash or "/" not in t


def _file_ok(p):
    """A file name inside the node's data directory: relative, no "..", no odd characters."""
    if not isinstance(p, str) or not 1 <= len(p) <= 64 or p[0] in "/\\" or p[-1] == "/":
        return False
    if ":" in p or "\\" in p:
        return False
    for part in p.split("/"):
        if part in ("", ".", ".."):
            return False
    for ch in p:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            return False
    return True


def _slug_ok(s):
    for ch in s:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_" or ch == "-"):
            return False
    return len(s) > 0


def parse_i2c_address(v):
    """Return the 7-bit address from "0x76" or 118; None when it is not one.

    A string must carry its "0x": i2cdetect prints addresses in hex without it, so "76" is
    refused rather than taken as decimal 76 (0x4c); `i2c_hint` suggests the fix."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        a = v
    elif isinstance(v, str):
        s = v.strip().lower()
        try:
            if s.startswith("0x") and len(s) > 2:
                a = int(s[2:], 16)
            else:
                return None
        except ValueError:
            return None
    else:
        return None
    return a if 0x08 <= a <= 0x77 else None


def _check_filter(c, path, f, out):
    if not c.obj(path, f):
        return
    t = f.get("type")
    if t not in FILTERS:
        if "type" in f:
            c.bad(path + ".type", "one of " + ", ".join(FILTERS), t)
        else:
            c.missing(path + ".type", "one of " + ", ".join(FILTERS))
        return
    n = {}
    n["type"] = t
    if t in ("median", "average"):
        c.extra(path, f, ("type", "size"))
        v = f.get("size", 5 if t == "median" else 4)
        if t == "median" and not (
            isinstance(v, int) and not isinstance(v, bool) and v % 2 == 1 and 3 <= v <= 15
        ):
            c.bad(path + ".size", "an odd integer 3..15", v)
        elif t == "average":
            c.integer(path + ".size", v, 2, 32)
        n["size"] = v
    elif t == "ema":
        c.extra(path, f, ("type", "alpha"))
        v = f.get("alpha", 0.3)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1):
            c.bad(path + ".alpha", "a number greater than 0 and at most 1", v)
        n["alpha"] = v
    elif t == "delta":
        c.extra(path, f, ("type", "min"))
        if "min" not in f:
            c.missing(path + ".min", "the smallest change worth publishing, a number > 0")
        else:
            v = f["min"]
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                c.bad(path + ".min", "a number > 0", v)
            n["min"] = v
    elif t in ("throttle", "heartbeat"):
        c.extra(path, f, ("type", "seconds"))
        if "seconds" not in f:
            c.missing(path + ".seconds", "an integer 1..86400")
        else:
            c.integer(path + ".seconds", f["seconds"], 1, 86400)
            n["seconds"] = f["seconds"]
    elif t == "clamp":
        c.extra(path, f, ("type", "min", "max", "drop"))
        lo, hi = f.get("min"), f.get("max")
        if lo is None and hi is None:
            c.missing(path + ".min", "a number (min, max or both)")
        ok = True
        if lo is not None:
            ok = c.number(path + ".min", lo) and ok
        if hi is not None:
            ok = c.number(path + ".max", hi) and ok
        if ok and lo is not None and hi is not None and lo > hi:
            c.bad(path + ".max", "a number >= min (%s)" % _num(lo), hi)
        if "drop" in f:
            c.boolean(path + ".drop", f["drop"])
        n["min"], n["max"], n["drop"] = lo, hi, f.get("drop", False)
    elif t == "round":
        c.extra(path, f, ("type", "step"))
        v = f.get("step")
        if v is None:
            c.missing(path + ".step", "a number > 0 such as 0.5")
        elif not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            c.bad(path + ".step", "a number > 0 such as 0.5", v)
        n["step"] = v
    out.append(n)


def _check_quantity(c, path, q, qname, out, used_topics):
    allowed = (
        "topic",
        "decimals",
        "offset",
        "scale",
        "two_point",
        "filters",
        "publish",
        "recompute",
    )
    if q is False:
        out["publish"] = False
        return
    if not c.obj(path, q, allowed):
        return
    sub = q.get("topic", SUBTOPIC.get(qname, qname))
    if not (isinstance(sub, str) and _topic_ok(sub)):
        c.bad(path + ".topic", 'a subtopic like "Temp" (no +, #, leading or trailing /)', sub)
    elif sub.split("/")[0] in RESERVED:
        c.bad(path + ".topic", "a subtopic not starting with one of " + ", ".join(RESERVED), sub)
    elif sub in used_topics:
        c.bad(path + ".topic", "a subtopic not used by %s" % used_topics[sub], sub)
    else:
        used_topics[sub] = path
    out["topic"] = sub
    d = q.get("decimals", DECIMALS.get(qname, 1))
    c.integer(path + ".decimals", d, 0, 6)
    out["decimals"] = d
    off = q.get("offset", 0)
    c.number(path + ".offset", off)
    out["offset"] = off
    sc = q.get("scale", 1)
    if c.number(path + ".scale", sc) and sc == 0:
        c.bad(path + ".scale", "a non-zero number", sc)
    out["scale"] = sc
    tp = q.get("two_point")
    out["two_point"] = None
    if tp is not None:
        form = "two [raw, true] pairs like [[0.3, 0.0], [99.1, 100.0]] with different raw values"
        ok = isinstance(tp, list) and len(tp) == 2
        if ok:
            for pair in tp:
                if not (isinstance(pair, list) and len(pair) == 2):
                    ok = False
                    break
                for x in pair:
                    if isinstance(x, bool) or not isinstance(x, (int, float)):
                        ok = False
            if ok and tp[0][0] == tp[1][0]:
                ok = False
        if not ok:
            c.bad(path + ".two_point", form, tp)
        else:
            out["two_point"] = tp
    fl = q.get("filters", [])
    nf = []
    if not isinstance(fl, list):
        c.bad(path + ".filters", 'a list of filters like [{"type": "median", "size": 5}]', fl)
    elif len(fl) > 8:
        c.bad(path + ".filters", "at most 8 filters", len(fl))
    else:
        for i, f in enumerate(fl):
            _check_filter(c, "%s.filters[%d]" % (path, i), f, nf)
    out["filters"] = nf
    p = q.get("publish", True)
    c.boolean(path + ".publish", p)
    out["publish"] = p
    r = q.get("recompute", True)
    c.boolean(path + ".recompute", r)
    out["recompute"] = r


def check_sensor(c, path, s, names, used_topics, board_pins):
    allowed = ("type", "name", "address", "bus", "pin", "rom", "interval", "params", "quantities")
    if not c.obj(path, s, allowed):
        return None
    n = {}
    t = s.get("type")
    if t not in TYPES:
        if "type" in s:
            c.bad(path + ".type", "a sensor type (" + ", ".join(sorted(TYPES)) + ")", t)
        else:
            c.missing(path + ".type", "a sensor type (" + ", ".join(sorted(TYPES)) + ")")
        return None
    n["type"] = t
    kind, quantities = TYPES[t]
    name = s.get("name", t)
    if not (isinstance(name, str) and 1 <= len(name) <= 32 and _slug_ok(name)):
        c.bad(path + ".name", 'a name of 1..32 characters a-z, 0-9, _ or - like "bme280"', name)
    elif name in names:
        c.bad(path + ".name", "a name not used by another sensor (give each sensor a name)", name)
    names.append(name)
    n["name"] = name
    if kind == "i2c":
        if "pin" in s:
            c.msgs.append("%s.pin: not used by %s (an I2C sensor); use address" % (path, t))
        a = s.get("address")
        if a is None:
            n["address"] = None  # driver default
        else:
            addr = parse_i2c_address(a)
            if addr is None:
                c.bad(path + ".address", _I2C_FORM + i2c_hint(a), a)
            n["address"] = addr
        b = s.get("bus", 0)
        c.integer(path + ".bus", b, 0, 1)
        n["bus"] = b
    else:
        if "address" in s:
            c.msgs.append("%s.address: not used by %s; it is wired to a pin" % (path, t))
        p = s.get("pin")
        if p is None:
            c.missing(path + ".pin", "a GPIO number like 4")
        elif isinstance(p, str) and board_pins is not None and p in board_pins:
            p = board_pins[p]
        elif not (isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 48):
            c.bad(path + ".pin", "a GPIO number 0..48", p)
        n["pin"] = p
        if "rom" in s:
            r = s["rom"]
            ok = kind == "onewire" and isinstance(r, str) and len(r) == 16
            if ok:
                try:
                    int(r, 16)
                except ValueError:
                    ok = False
            if not ok:
                c.bad(path + ".rom", 'a 1-Wire ROM id of 16 hex digits like "28ff4a1b6c16030a"', r)
            n["rom"] = r
    iv = s.get("interval")
    if iv is not None:
        c.integer(path + ".interval", iv, 1, 86400)
    n["interval"] = iv
    pr = s.get("params", {})
    if c.obj(path + ".params", pr):
        n["params"] = pr
    qs = s.get("quantities")
    nq = {}
    if qs is None:
        qs = {}
    if not isinstance(qs, dict):
        c.bad(path + ".quantities", 'an object like {"temperature": {"topic": "Temp"}}', qs)
        qs = {}
    for k in qs:
        if k not in quantities:
            c.bad(
                "%s.quantities.%s" % (path, k),
                "a quantity of %s (%s)" % (t, ", ".join(quantities)),
                k,
            )
    for qn in quantities:
        qo = {}
        _check_quantity(c, "%s.quantities.%s" % (path, qn), qs.get(qn, {}), qn, qo, used_topics)
        nq[qn] = qo
    n["quantities"] = nq
    return n


def _section(c, doc, key, allowed):
    v = doc.get(key, {})
    if v is True:
        v = {"enabled": True}
    elif v is False:
        v = {"enabled": False}
    if not c.obj(key, v, allowed):
        return {}
    return v


def check(doc, board_pins=None, boards=None):
    """Validate `doc`; return (messages, normalized copy with defaults).

    Total: whatever `doc` holds (deep nesting, 1e999, a list where a number goes), the answer
    is messages, never an exception. `boards` lists the known board names (default: the
    board files found by `known_boards()`; an empty list skips the check)."""
    try:
        msgs = _shape_problems(doc)
        if msgs:
            return msgs, None
        return _check(doc, board_pins, boards)
    except MemoryError:
        return ["(top): too big to check in the memory available"], None
    except Exception as e:  # noqa: BLE001 - the validator must answer, never raise
        return ["(top): cannot be checked (%s)" % type(e).__name__], None


def _check(doc, board_pins, boards):
    c = _Checker()
    out = {}
    if not isinstance(doc, dict):
        c.bad("(top)", "a JSON object {...}", doc)
        return c.msgs, None
    c.extra(
        "",
        doc,
        (
            "version",
            "board",
            "name",
            "topic",
            "area",
            "interval",
            "json",
            "wifi",
            "mqtt",
            "sensors",
            "discovery",
            "deep_sleep",
            "spool",
            "diag",
            "safe_mode",
            "time",
            "commands",
            "status_led",
            "$schema",
            "comment",
        ),
    )
    v = doc.get("version")
    if v is None:
        c.missing("version", "the schema version %d" % VERSION)
    elif v != VERSION or isinstance(v, bool) or not isinstance(v, int):
        c.bad("version", "the schema version %d" % VERSION, v)
    out["version"] = VERSION
    b = doc.get("board")
    if b is None:
        c.missing("board", 'a board name from boards/ like "esp32-devkitc"')
    elif not (isinstance(b, str) and 1 <= len(b) <= 32 and _slug_ok(b)):
        c.bad("board", 'a board name from boards/ like "esp32-devkitc"', b)
    else:
        known = known_boards() if boards is None else boards
        if known and b not in known:
            c.msgs.append(
                "board: unknown board %s (known: %s)%s"
                % (json.dumps(b), ", ".join(known), _closest_hint(b, known))
            )
    out["board"] = b
    t = doc.get("topic")
    tform = 'a base topic like "Erdgeschoss/Wohnzimmer" (no +, #, $, leading or trailing /)'
    if t is None:
        c.missing("topic", tform)
        t = "node"
    elif not (isinstance(t, str) and _topic_ok(t)):
        c.bad("topic", tform, t)
        t = "node"
    out["topic"] = t
    last = t.split("/")[-1]
    name = doc.get("name", last)
    c.string("name", name, 1, 64)
    out["name"] = name
    area = doc.get("area", last)
    c.string("area", area, 1, 64)
    out["area"] = area
    iv = doc.get("interval", 60)
    c.integer("interval", iv, 1, 86400)
    out["interval"] = iv
    j = doc.get("json", False)
    c.boolean("json", j)
    out["json"] = j

    # wifi: a list of networks, tried in order
    w = doc.get("wifi")
    nw = []
    wform = 'a list of networks like [{"ssid": "home", "password": "..."}]'
    if w is None:
        c.missing("wifi", wform + _SECRETS_HINT)
    elif isinstance(w, dict):
        w = [w]
    if w is not None:
        if not isinstance(w, list) or not w:
            c.bad("wifi", wform, w)
        else:
            if len(w) > 4:
                c.bad("wifi", "at most 4 networks", len(w))
            for i, net in enumerate(w):
                p = "wifi[%d]" % i
                if not c.obj(p, net, ("ssid", "password", "hostname")):
                    continue
                if "ssid" not in net:
                    c.missing(p + ".ssid", "the network name, 1..32 characters")
                else:
                    c.string(p + ".ssid", net["ssid"], 1, 32)
                pw = net.get("password")
                if pw is None:
                    c.missing(
                        p + ".password",
                        'the WPA password (or "" for an open network)' + _SECRETS_HINT,
                    )
                    pw = ""
                elif not isinstance(pw, str) or not (len(pw) == 0 or 8 <= len(pw) <= 63):
                    c.bad(
                        p + ".password",
                        'a WPA password of 8..63 characters (or "" for an open network)',
                        pw,
                    )
                nw.append({"ssid": net.get("ssid"), "password": pw})
    out["wifi"] = nw

    # mqtt
    m = doc.get("mqtt")
    nm = {}
    if m is None:
        c.missing("mqtt", 'an object like {"host": "192.168.1.10"}')
        m = {}
    if c.obj(
        "mqtt",
        m,
        (
            "host",
            "port",
            "user",
            "password",
            "tls",
            "ca",
            "tls_insecure",
            "keepalive",
            "client_id",
            "qos",
        ),
    ):
        h = m.get("host")
        hform = 'a broker host name or IP address like "192.168.1.10"'
        if h is None:
            c.missing("mqtt.host", hform)
        elif not (
            isinstance(h, str)
            and 1 <= len(h) <= 253
            and " " not in h
            and "/" not in h
            and ":" not in h
        ):
            c.bad("mqtt.host", hform, h)
        nm["host"] = h
        tls = m.get("tls", False)
        c.boolean("mqtt.tls", tls)
        nm["tls"] = tls
        port = m.get("port", 8883 if tls is True else 1883)
        c.integer("mqtt.port", port, 1, 65535)
        nm["port"] = port
        for k in ("user", "password"):
            x = m.get(k)
            if x is not None:
                c.string("mqtt." + k, x, 0 if k == "password" else 1, 128)
            nm[k] = x
        if nm["password"] is not None and nm["user"] is None:
            c.missing("mqtt.user", "a user name when a password is given")
        if nm["user"] is not None and nm["password"] is None:
            c.missing("mqtt.password", "the broker password for mqtt.user" + _SECRETS_HINT)
        ca = m.get("ca")
        ins = m.get("tls_insecure", False)
        c.boolean("mqtt.tls_insecure", ins)
        if ca is not None:
            if not _file_ok(ca):
                c.bad(
                    "mqtt.ca",
                    'a CA file name in the node\'s folder like "ca.pem" (relative, no "..")',
                    ca,
                )
            if tls is not True:
                c.msgs.append("mqtt.ca: only used with TLS; set mqtt.tls to true")
        elif tls is True and ins is not True:
            c.missing(
                "mqtt.ca",
                'a CA file like "ca.pem" to verify the broker with TLS (or "tls_insecure": true'
                " to accept any certificate, which lets a man in the middle read the password)",
            )
        if ins is True and tls is not True:
            c.msgs.append("mqtt.tls_insecure: only used with TLS; set mqtt.tls to true")
        nm["ca"] = ca
        nm["tls_insecure"] = ins
        ka = m.get("keepalive", 60)
        c.integer("mqtt.keepalive", ka, 5, 3600)
        nm["keepalive"] = ka
        cid = m.get("client_id")
        if cid is not None:
            if not (isinstance(cid, str) and 1 <= len(cid) <= 23 and _slug_ok(cid.lower())):
                c.bad(
                    "mqtt.client_id",
                    "1..23 characters a-z, A-Z, 0-9, _ or - (or leave it out for one from the MAC)",
                    cid,
                )
        nm["client_id"] = cid
        q = m.get("qos", 1)
        if q not in (0, 1) or isinstance(q, bool):
            c.bad("mqtt.qos", "0 or 1", q)
        nm["qos"] = q
    out["mqtt"] = nm

    # sensors
    ss = doc.get("sensors", [])
    ns = []
    if not isinstance(ss, list):
        c.bad("sensors", 'a list of sensors like [{"type": "bme280", "address": "0x76"}]', ss)
    elif len(ss) > 8:
        c.bad("sensors", "at most 8 sensors", len(ss))
    else:
        names = []
        used = {}
        for i, s in enumerate(ss):
            r = check_sensor(c, "sensors[%d]" % i, s, names, used, board_pins)
            if r is not None:
                if r["interval"] is None:
                    r["interval"] = iv
                ns.append(r)
        # Two sensors at the same I2C address on the same bus can never both answer.
        seen = {}
        for i, s in enumerate(ns):
            if s.get("address") is not None and s["bus"] in (0, 1) and s["bus"] is not True:
                k = (s["bus"], s["address"])
                if k in seen:
                    c.msgs.append(
                        "sensors[%d].address: 0x%02x is already used by %s on bus %d"
                        % (i, s["address"], seen[k], s["bus"])
                    )
                seen[k] = s["name"]
    out["sensors"] = ns

    d = _section(c, doc, "discovery", ("enabled", "prefix"))
    de = d.get("enabled", True)
    c.boolean("discovery.enabled", de)
    pre = d.get("prefix", "homeassistant")
    if not (isinstance(pre, str) and _topic_ok(pre)):
        c.bad("discovery.prefix", 'a topic prefix like "homeassistant"', pre)
    out["discovery"] = {"enabled": de, "prefix": pre}

    d = _section(
        c, doc, "deep_sleep", ("enabled", "interval", "awake_cap", "outage_after", "retry_max")
    )
    se = d.get("enabled", False)
    c.boolean("deep_sleep.enabled", se)
    si = d.get("interval", 300)
    c.integer("deep_sleep.interval", si, 10, 86400)
    cap = d.get("awake_cap", 30)
    c.integer("deep_sleep.awake_cap", cap, 5, 600)
    oa = d.get("outage_after", 3)
    c.integer("deep_sleep.outage_after", oa, 1, 100)
    rm = d.get("retry_max", 1800)
    c.integer("deep_sleep.retry_max", rm, 10, 604800)
    out["deep_sleep"] = {
        "enabled": se,
        "interval": si,
        "awake_cap": cap,
        "outage_after": oa,
        "retry_max": rm,
    }

    d = _section(c, doc, "spool", ("ram", "max_bytes", "batch", "file"))
    r = d.get("ram", 16)
    c.integer("spool.ram", r, 1, 256)
    # A deep-sleep node rides out outages on the spool alone (skipped wakes store every
    # reading): 256 KB holds about 45 h of the default scenario (four sensors every 300 s,
    # ~90 B a record, the oldest quarter dropped when full). Mains nodes: 32 KB.
    mb = d.get("max_bytes", 262144 if se is True else 32768)
    c.integer("spool.max_bytes", mb, 1024, 1048576)
    bt = d.get("batch", 8)
    c.integer("spool.batch", bt, 1, 256)
    fn = d.get("file", "spool.dat")
    if not _file_ok(fn):
        c.bad(
            "spool.file",
            'a file name in the node\'s folder like "spool.dat" (relative, no "..")',
            fn,
        )
    out["spool"] = {"ram": r, "max_bytes": mb, "batch": bt, "file": fn}

    d = _section(c, doc, "diag", ("interval",))
    di = d.get("interval", 300)
    c.integer("diag.interval", di, 10, 86400)
    out["diag"] = {"interval": di}

    d = _section(c, doc, "safe_mode", ("bad_boots", "good_after", "button"))
    bb = d.get("bad_boots", 3)
    c.integer("safe_mode.bad_boots", bb, 1, 20)
    ga = d.get("good_after", 60)
    c.integer("safe_mode.good_after", ga, 5, 3600)
    bu = d.get("button", True)
    c.boolean("safe_mode.button", bu)
    out["safe_mode"] = {"bad_boots": bb, "good_after": ga, "button": bu}

    d = _section(c, doc, "time", ("ntp", "retries", "resync"))
    ntp = d.get("ntp", "pool.ntp.org")
    if ntp is not None:
        c.string("time.ntp", ntp, 1, 253, 'an NTP server like "pool.ntp.org" (or null for none)')
    rt = d.get("retries", 3)
    c.integer("time.retries", rt, 0, 10)
    rs = d.get("resync", 21600)
    c.integer("time.resync", rs, 60, 604800)
    out["time"] = {"ntp": ntp, "retries": rt, "resync": rs}

    d = _section(c, doc, "status_led", ("enabled", "pin", "active"))
    le = d.get("enabled", True)
    c.boolean("status_led.enabled", le)
    lp = d.get("pin")  # None: the board file's LED
    if lp is not None and c.integer("status_led.pin", lp, 0, 48):
        for s in ns:
            if s.get("pin") == lp:
                c.msgs.append(
                    "status_led.pin: GPIO%d is already used by sensor %s" % (lp, s["name"])
                )
    la = d.get("active")  # None: as the board file says, else 1
    if la is not None and (la not in (0, 1) or isinstance(la, bool)):
        c.bad("status_led.active", "1 (lit when the pin is high) or 0 (lit when low)", la)
    out["status_led"] = {"enabled": le, "pin": lp, "active": la}

    d = _section(c, doc, "commands", ("enabled", "max_bytes", "confirm_timeout"))
    ce = d.get("enabled", True)
    c.boolean("commands.enabled", ce)
    cm = d.get("max_bytes", 2048)
    c.integer("commands.max_bytes", cm, 64, 8192)
    ct = d.get("confirm_timeout", 120)
    c.integer("commands.confirm_timeout", ct, 10, 3600)
    out["commands"] = {"enabled": ce, "max_bytes": cm, "confirm_timeout": ct}
    return c.msgs, (out if not c.msgs else None)


# What a set_config over MQTT may not touch: anyone who may publish to <base>/cmd could
# otherwise point the node (and its password) at their own broker, or lock the owner out.
_LOCAL_MQTT = ("host", "port", "user", "password", "tls", "ca", "tls_insecure", "client_id")
_LOCAL = (("wifi", None), ("commands", None), ("spool", "file"))


def remote_change_problems(old_doc, new_doc):
    """Messages for each setting `new_doc` changes that only a deploy over USB may change.

    Both are whole (merged) documents. Empty list: the change may be applied remotely."""
    out = []
    o = old_doc if isinstance(old_doc, dict) else {}
    n = new_doc if isinstance(new_doc, dict) else {}
    why = ": cannot be changed over MQTT (connection and security settings change by deploy)"

    def sub(d, k):
        v = d.get(k)
        return v if isinstance(v, dict) else {}

    for k, inner in _LOCAL:
        if inner is None:
            if o.get(k) != n.get(k):
                out.append(k + why)
        elif sub(o, k).get(inner) != sub(n, k).get(inner):
            out.append("%s.%s%s" % (k, inner, why))
    om, nm = o.get("mqtt"), n.get("mqtt")
    if not isinstance(om, dict) or not isinstance(nm, dict):
        if om != nm:
            out.append("mqtt" + why)
    else:
        for k in _LOCAL_MQTT:
            if om.get(k) != nm.get(k):
                out.append("mqtt." + k + why)
    return out


def validate(doc, board_pins=None, boards=None):
    """Return a list of problem messages (empty when the document is valid)."""
    return check(doc, board_pins, boards)[0]


def normalize(doc, board_pins=None, boards=None):
    """Return the document with every default filled in; None if it is invalid."""
    return check(doc, board_pins, boards)[1]


def load(
    path="config.json", secrets="secrets.json", lastgood="config.lastgood.json", board_pins=None
):
    """Load the node config.

    Returns (cfg, source, problems): cfg normalized or None; source is "config", "lastgood"
    or None; problems lists what was wrong with config.json (also when last-good was used).
    """
    doc, problems = load_doc(path, secrets)
    if doc is not None:
        problems, cfg = check(doc, board_pins)
        if cfg is not None:
            return cfg, "config", []
    if lastgood:
        lg, err = read_json(lastgood)
        if lg is not None:
            cfg = normalize(lg, board_pins)
            if cfg is not None:
                return cfg, "lastgood", problems
    return None, None, problems


def main(argv):
    if len(argv) < 2 or argv[0] != "check" or len(argv) > 3:
        print("usage: micropython -m node.config check config.json [secrets.json]")
        return 2
    path = argv[1]
    doc, msgs = load_doc(path, argv[2] if len(argv) > 2 else None, True)
    if doc is not None:
        msgs = ["%s: %s" % (path, m) for m in validate(doc)]
    for m in msgs:
        print(m)
    if msgs:
        return 1
    print("%s: OK" % path)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
