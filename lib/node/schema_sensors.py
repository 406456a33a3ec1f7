"""Schema of one entry of config.json "sensors": type, wiring, quantities, calibration, filters.

from node.schema import _Checker
from node.schema_sensors import check_sensor
c = _Checker(); out = check_sensor(c, "sensors[0]", {"type": "bme280"}, [], {}, None)
"""

from node.schema import (
    DECIMALS,
    FILTERS,
    RESERVED,
    SUBTOPIC,
    TYPES,
    _I2C_FORM,
    _num,
    _slug_ok,
    _topic_ok,
    parse_i2c_address,
)


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
                c.bad(path + ".address", _I2C_FORM, a)
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
                c.bad(path + ".rom", 'a 1-Wire ROM id of 16 hex digits like "28ff4a1b6c1603a1"', r)
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
