"""Command execution: what each command does to a running node (parsing is in commands.py).

Loaded on the first command, so a node that is never commanded never spends heap on it.
set_config is applied by a reset and stays on trial until `confirm`; otherwise the node puts
the previous config.json back (`startup.revert_trial`) and resets again.

    from node import cmdexec
    cmdexec.handle(node, topic, msg, retained, now)
"""

import json

from node import cfgfile
from node.startup import _path, _remove


def handle(n, topic, msg, retained, now):
    if isinstance(topic, (bytes, bytearray)):
        topic = bytes(topic).decode()
    if n.announcer is not None and topic == n.announcer.status_topic:
        if not retained:  # HA's birth message; a retained copy is old news
            n.announcer.on_ha_status(bytes(msg), now)
        return
    if topic == n.topics.awake:
        v = bytes(msg).strip().lower()
        n._awake = v in (b"1", b"on", b"true", b"stay")
        return
    if topic != n.topics.cmd:
        return
    from node import commands

    names = {}
    for s in n.sensors:
        names[s.name] = list(s.chains)
    cmd, err = commands.parse(bytes(msg), retained, n.cfg["commands"]["max_bytes"], names)
    if cmd is None and err is None:
        return  # retained: a stale command never fires
    if err or cmd is None:
        n._pub(n.topics.result, commands.result(None, False, error=err), False, 1)
        return
    if n.safe_reason and cmd["cmd"] not in commands.SAFE:
        n._pub(
            n.topics.result,
            commands.result(
                cmd,
                False,
                error="safe mode (%s): only %s" % (n.safe_reason, ", ".join(commands.SAFE)),
            ),
            False,
            1,
        )
        return
    try:
        res = run_cmd(n, cmd, now)
    except Exception as e:  # noqa: BLE001 - a command must never take the node down
        res = commands.result(cmd, False, error="failed: %r" % e)
    if res:
        n._pub(n.topics.result, res, False, 1)


def run_cmd(n, cmd, now):
    from node import commands

    name = cmd["cmd"]
    ok = commands.result
    if name == "read":
        for s in n.sensors:
            s.due = now
        return ok(cmd, True, sensors=len(n.sensors))
    if name == "status":
        from node import diag

        n._pub(n.topics.diag, diag.status(n))
        return ok(cmd, True)
    if name == "interval":
        sec = cmd["seconds"]
        for s in n.sensors:
            if cmd.get("sensor") in (None, s.name):
                s.interval_ms = sec * 1000
                s.due = now

        def mut(doc):
            if "sensor" in cmd:
                for sd in doc.get("sensors", []):
                    if sd.get("name", sd.get("type")) == cmd["sensor"]:
                        sd["interval"] = sec
            else:
                doc["interval"] = sec
                for sd in doc.get("sensors", []):
                    sd.pop("interval", None)

        err = persist(n, mut)
        return ok(cmd, True, seconds=sec, saved=err is None, **({"note": err} if err else {}))
    if name == "calibrate":
        return calibrate(n, cmd)
    if name == "get_config":
        return ok(
            cmd, True, config=commands.redact(n.cfg), source=n.cfg_source, trial=n.trial is not None
        )
    if name == "set_config":
        return set_config(n, cmd, now)
    if name == "confirm":
        if n.trial is None:
            return ok(cmd, False, error="nothing to confirm: no set_config is on trial")
        cfgfile.keep_good(merged_doc(), _path("config.lastgood.json"))
        _remove(_path("config.trial"))
        _remove(_path("config.json.bak"))
        n.trial = None
        return ok(cmd, True, kept=True)
    if name == "reboot":
        n.shutdown("reset", now)
        return ok(cmd, True, rebooting=True)
    if name == "leave_safe_mode":
        if n.guard is not None:
            n.guard.leave()
        if not n.safe_reason:
            return ok(cmd, True, note="not in safe mode")
        n.shutdown("reset", now)
        return ok(cmd, True, rebooting=True)
    return ok(cmd, False, error="not handled")


def calibrate(n, cmd):
    from node import commands

    s = None
    for x in n.sensors:
        if x.name == cmd["sensor"]:
            s = x
    if s is None:  # parse() checked the name; the sensor list cannot change meanwhile
        return commands.result(cmd, False, error="no such sensor")
    ch = s.chains[cmd["quantity"]]
    cal = ch.cal
    off, sc, tp = cal.offset, cal.scale, cal.two_point
    if "scale" in cmd:
        sc = cmd["scale"]
    if "two_point" in cmd:
        tp = cmd["two_point"]
    if "offset" in cmd:
        off = cmd["offset"]
    if "reference" in cmd:
        if ch.last_value is None:
            return commands.result(cmd, False, error="no reading yet to compare with the reference")
        off = off + (cmd["reference"] - ch.last_value)
    cal.set(off, sc, tp)
    ch.reset()
    q = s.cfg["quantities"][cmd["quantity"]]
    q["offset"], q["scale"], q["two_point"] = off, sc, tp

    def mut(doc):
        for sd in doc.get("sensors", []):
            if sd.get("name", sd.get("type")) == s.name:
                qs = sd.setdefault("quantities", {})
                qd = qs.setdefault(cmd["quantity"], {})
                if qd is False:
                    return
                qd["offset"], qd["scale"] = off, sc
                if tp:
                    qd["two_point"] = tp

    err = persist(n, mut)
    return commands.result(cmd, True, offset=off, scale=sc, two_point=tp, saved=err is None)


def merged_doc():
    doc, _ = cfgfile.load_doc(_path("config.json"), _path("secrets.json"))
    return doc


def persist(n, mutate):
    """Apply `mutate` to config.json on flash if the result stays valid. None or a reason."""
    doc, errs = cfgfile.read_json(_path("config.json"))
    if doc is None:
        return errs
    mutate(doc)
    merged = json.loads(json.dumps(doc))
    sec, _ = cfgfile.read_json(_path("secrets.json"))
    if isinstance(sec, dict):
        merged = cfgfile.merge(merged, sec)
    if _validate(merged):
        return "the change would make config.json invalid; kept for this run only"
    cfgfile.save_json(_path("config.json"), doc)
    if n.trial is None:
        cfgfile.keep_good(merged, _path("config.lastgood.json"))
    return None


def set_config(n, cmd, now):
    from node import commands

    cur, err = cfgfile.read_json(_path("config.json"))
    if cur is None or not cmd.get("merge", True):
        new = cmd["config"]
    else:
        new = cfgfile.merge(json.loads(json.dumps(cur)), cmd["config"])
    merged = json.loads(json.dumps(new))
    sec, _ = cfgfile.read_json(_path("secrets.json"))
    if isinstance(sec, dict):
        merged = cfgfile.merge(merged, sec)
    problems = _validate(merged)
    if problems:
        return commands.result(
            cmd, False, error="invalid config: nothing changed", problems=problems[:20]
        )
    timeout = cmd.get("confirm_timeout") or n.cfg["commands"]["confirm_timeout"]
    # The running config is the one to go back to: make sure a copy exists.
    if n.trial is None and cur is not None:
        cfgfile.save_json(_path("config.json.bak"), cur)
        cur_merged = merged_doc()
        if cur_merged is not None and not _validate(cur_merged):
            cfgfile.keep_good(cur_merged, _path("config.lastgood.json"))
    cfgfile.save_json(_path("config.json"), new)
    cfgfile.save_json(_path("config.trial"), {"timeout": timeout, "boots": 0})
    n.shutdown("reset", now)
    return commands.result(cmd, True, applied=True, confirm_within=timeout, rebooting=True)


def _validate(doc):
    """The validator's messages for doc; the validator is loaded for this and dropped again."""
    from node import config
    from node.app import _unload

    msgs = config.validate(doc)
    del config
    _unload("node.config")
    return msgs
