"""Node configuration: versioned schema, validator, loader with secrets merge and last-good copy.

`validate(doc)` returns a list of messages, one per problem, each naming the JSON path and the
expected form (``sensors[1].address: expected an I2C address like "0x76", got "76x"``).
`normalize(doc)` fills in defaults (call it only on a valid doc). `load()` reads config.json,
merges secrets.json over it, validates, and falls back to the last-good copy.

    from node import config
    cfg, source, problems = config.load("config.json", "secrets.json")

Command line (Unix port or device REPL), exit 1 when there are problems, 2 on bad usage:

    micropython -m node.config check config.json [secrets.json]
"""

# Re-exported: config.TYPES, config.load_doc ... are part of this module's interface.
from node.cfgfile import keep_good, load_doc, merge, read_json, save_json  # noqa: F401
from node.schema import (  # noqa: F401
    DECIMALS,
    FILTERS,
    RESERVED,
    SUBTOPIC,
    TYPES,
    VERSION,
    _Checker,
    _slug_ok,
    _topic_ok,
    parse_i2c_address,
)


def _section(c, doc, key, allowed):
    v = doc.get(key, {})
    if v is True:
        v = {"enabled": True}
    elif v is False:
        v = {"enabled": False}
    if not c.obj(key, v, allowed):
        return {}
    return v


def check(doc, board_pins=None):
    """Validate `doc`; return (messages, normalized copy with defaults)."""
    from node.schema_sensors import check_sensor as _sensor

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
        c.missing("wifi", wform)
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
                pw = net.get("password", "")
                if not isinstance(pw, str) or not (len(pw) == 0 or 8 <= len(pw) <= 64):
                    c.bad(
                        p + ".password",
                        'a WPA password of 8..63 characters (or "" for an open network)',
                        "<%d characters>" % len(pw) if isinstance(pw, str) else pw,
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
        ("host", "port", "user", "password", "tls", "ca", "keepalive", "client_id", "qos"),
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
        ca = m.get("ca")
        if ca is not None:
            c.string("mqtt.ca", ca, 1, 64, 'a CA file name on the device like "ca.pem"')
            if tls is not True:
                c.msgs.append("mqtt.ca: only used with TLS; set mqtt.tls to true")
        nm["ca"] = ca
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
            r = _sensor(c, "sensors[%d]" % i, s, names, used, board_pins)
            if r is not None:
                if r["interval"] is None:
                    r["interval"] = iv
                ns.append(r)
        # Two sensors at the same I2C address on the same bus can never both answer.
        seen = {}
        for i, s in enumerate(ns):
            if s.get("address") is not None:
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

    d = _section(c, doc, "deep_sleep", ("enabled", "interval", "awake_cap"))
    se = d.get("enabled", False)
    c.boolean("deep_sleep.enabled", se)
    si = d.get("interval", 300)
    c.integer("deep_sleep.interval", si, 10, 86400)
    cap = d.get("awake_cap", 30)
    c.integer("deep_sleep.awake_cap", cap, 5, 600)
    out["deep_sleep"] = {"enabled": se, "interval": si, "awake_cap": cap}

    d = _section(c, doc, "spool", ("ram", "max_bytes", "batch", "file"))
    r = d.get("ram", 16)
    c.integer("spool.ram", r, 1, 256)
    mb = d.get("max_bytes", 32768)
    c.integer("spool.max_bytes", mb, 1024, 1048576)
    bt = d.get("batch", 8)
    c.integer("spool.batch", bt, 1, 256)
    fn = d.get("file", "spool.dat")
    c.string("spool.file", fn, 1, 64)
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

    d = _section(c, doc, "commands", ("enabled", "max_bytes", "confirm_timeout"))
    ce = d.get("enabled", True)
    c.boolean("commands.enabled", ce)
    cm = d.get("max_bytes", 2048)
    c.integer("commands.max_bytes", cm, 64, 8192)
    ct = d.get("confirm_timeout", 120)
    c.integer("commands.confirm_timeout", ct, 10, 3600)
    out["commands"] = {"enabled": ce, "max_bytes": cm, "confirm_timeout": ct}
    return c.msgs, (out if not c.msgs else None)


def validate(doc, board_pins=None):
    """Return a list of problem messages (empty when the document is valid)."""
    return check(doc, board_pins)[0]


def normalize(doc, board_pins=None):
    """Return the document with every default filled in; None if it is invalid."""
    return check(doc, board_pins)[1]


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
