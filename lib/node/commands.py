"""Commands on `<base>/cmd`, results on `<base>/result`.

A command is a JSON object ``{"cmd": "...", "id": <anything, echoed>, ...}`` (a bare word
like ``read`` is taken as ``{"cmd": "read"}``). `parse()` checks it completely before anything
acts on it; a retained message is ignored (a stale command must not fire again on every
reconnect), an oversized or malformed one gets an error result.

| cmd | arguments |
| --- | --- |
| read | - (read every sensor now and publish) |
| interval | seconds 1..86400, sensor (optional name; default all) |
| calibrate | sensor, quantity, and offset / scale / two_point / reference (true value now) |
| get_config | - (secrets redacted) |
| set_config | config (whole document or a part merged over the current one) |
| confirm | - (keep the config set by set_config; otherwise it is reverted) |
| reboot | - |
| leave_safe_mode | - |
| status | - (diagnostics now) |

    cmd, err = parse(msg, retained=False, max_bytes=2048)
    if err: publish(result_topic, result(cmd, False, error=err))   # cmd: the id, or None
"""

import json

NAMES = (
    "read",
    "interval",
    "calibrate",
    "get_config",
    "set_config",
    "confirm",
    "reboot",
    "leave_safe_mode",
    "status",
)
# Allowed in safe mode: network, MQTT, status and config commands only.
SAFE = ("get_config", "set_config", "confirm", "reboot", "leave_safe_mode", "status")


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def parse(msg, retained=False, max_bytes=2048, sensors=None):
    """-> (cmd dict, None), (echo, error message), or (None, None) for ignored (retained).

    On an error `echo` is None or, when the payload was a JSON object, ``{"cmd": .., "id": ..}``
    taken from it, so the error result still carries the request's id.
    """
    if retained:
        return None, None
    if len(msg) > max_bytes:
        return None, "payload too large: %d bytes, at most %d" % (len(msg), max_bytes)
    try:
        text = msg.decode() if isinstance(msg, (bytes, bytearray)) else msg
    except UnicodeError:
        return None, "payload is not UTF-8 text"
    text = text.strip()
    if text and text[0] != "{":
        if text in NAMES:
            return {"cmd": text}, None
        return (
            None,
            'expected a JSON object like {"cmd": "read"} or a command name (%s)' % ", ".join(NAMES),
        )
    try:
        c = json.loads(text)
    except (ValueError, TypeError):
        return None, 'malformed JSON; expected an object like {"cmd": "read"}'
    except Exception:  # noqa: BLE001 - RuntimeError/MemoryError on deep nesting: still an answer
        return None, "JSON nested too deep or too big for the node"
    if not isinstance(c, dict):
        return None, 'expected a JSON object like {"cmd": "read"}'
    name = c.get("cmd")
    if name not in NAMES:
        err = "cmd: expected one of %s, got %s" % (", ".join(NAMES), json.dumps(name))
        return _echo(c), err
    err = _check_args(c, sensors)
    if err:
        return _echo(c), err
    return c, None


def _echo(c):
    # Only what result() copies, so a large bad payload is not kept alive for the reply.
    e = {}
    if "id" in c:
        e["id"] = c["id"]
    if isinstance(c.get("cmd"), str):
        e["cmd"] = c["cmd"]
    return e


def _check_args(c, sensors):
    name = c["cmd"]
    if name == "interval":
        s = c.get("seconds")
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 86400:
            return "seconds: expected an integer 1..86400, got %s" % json.dumps(s)
        if "sensor" in c:
            return _sensor(c, sensors)
    elif name == "calibrate":
        e = _sensor(c, sensors, need=True)
        if e:
            return e
        qs = sensors[c["sensor"]] if sensors is not None else None
        qn = c.get("quantity")
        if not isinstance(qn, str) or (qs is not None and qn not in qs):
            return "quantity: expected one of %s, got %s" % (
                ", ".join(qs) if qs else "the sensor's quantities",
                json.dumps(qn),
            )
        keys = [k for k in ("offset", "scale", "two_point", "reference") if k in c]
        if not keys:
            return "expected one of offset, scale, two_point or reference"
        for k in keys:
            v = c[k]
            if k == "two_point":
                ok = (
                    isinstance(v, list)
                    and len(v) == 2
                    and all(
                        isinstance(p, list) and len(p) == 2 and _num(p[0]) and _num(p[1]) for p in v
                    )
                    and v[0][0] != v[1][0]
                )
                if not ok:
                    return (
                        "two_point: expected [[raw, true], [raw, true]] with different raw"
                        " values, got %s" % json.dumps(v)
                    )
            elif not _num(v) or (k == "scale" and v == 0):
                return "%s: expected a %snumber, got %s" % (
                    k,
                    "non-zero " if k == "scale" else "",
                    json.dumps(v),
                )
    elif name == "set_config":
        v = c.get("config")
        if not isinstance(v, dict):
            return (
                "config: expected an object (the whole config or a part of it), got %s"
                % json.dumps(v)
            )
        m = c.get("merge", True)
        if not isinstance(m, bool):
            return "merge: expected true or false, got %s" % json.dumps(m)
        t = c.get("confirm_timeout")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 10 <= t <= 3600):
            return "confirm_timeout: expected an integer 10..3600, got %s" % json.dumps(t)
    return None


def _sensor(c, sensors, need=False):
    s = c.get("sensor")
    if s is None and not need:
        return None
    if not isinstance(s, str) or (sensors is not None and s not in sensors):
        known = ", ".join(sensors) if sensors else "a configured sensor name"
        return "sensor: expected one of %s, got %s" % (known, json.dumps(s))
    return None


def result(cmd, ok, error=None, **data):
    """Result payload text: {"id":..,"cmd":..,"ok":..,"error":..,...}."""
    d = {"ok": ok}
    if cmd is not None:
        d["cmd"] = cmd.get("cmd")
        if "id" in cmd:
            d["id"] = cmd["id"]
    if error is not None:
        d["error"] = error
    for k in data:
        d[k] = data[k]
    return json.dumps(d)


def error_result(msg, error):
    """Error reply for a payload parse() refused, with its "id" (and "cmd") when readable.

    The request may be anything (oversized, not JSON, an unknown cmd); the reply carries what
    the sender needs to match it, and nothing else of the payload."""
    d = {"ok": False, "error": error}
    try:
        if len(msg) <= 8192:
            text = msg.decode() if isinstance(msg, (bytes, bytearray)) else msg
            c = json.loads(text)
            if isinstance(c, dict):
                if isinstance(c.get("cmd"), str) and len(c["cmd"]) <= 32:
                    d["cmd"] = c["cmd"]
                if "id" in c:
                    i = c["id"]
                    if isinstance(i, (str, int, float, bool)) or i is None:
                        d["id"] = i if not isinstance(i, str) or len(i) <= 64 else i[:64]
        return json.dumps(d)
    except Exception:  # noqa: BLE001 - a reply without id beats none
        d.pop("cmd", None)
        d.pop("id", None)
        return json.dumps(d)


# Keys whose values never leave the node (the home of this list; config.py uses it).
SECRET_KEYS = ("password",)


def redact(doc, secrets=None):
    """A copy of a config with every secret replaced by "***" (for get_config, messages).

    Secrets: any key named in SECRET_KEYS at any depth, and every value at a path that
    `secrets` (the secrets.json document, when given) also holds."""
    if isinstance(doc, dict):
        out = {}
        for k in doc:
            v = doc[k]
            s = secrets.get(k) if isinstance(secrets, dict) else None
            if k in SECRET_KEYS and v or (s is not None and not isinstance(s, (dict, list))):
                out[k] = "***"
            else:
                out[k] = redact(v, s)
        return out
    if isinstance(doc, list):
        if isinstance(secrets, list):
            return [
                redact(doc[i], secrets[i] if i < len(secrets) else None) for i in range(len(doc))
            ]
        return [redact(x) for x in doc]
    return doc
