"""Command execution: what each command does to a running node (parsing is in commands.py,
the config files are node.cfgfile's, validation node.config's).

Loaded when a command arrives and dropped again after (node.cold), so a node spends heap on
commands only while it runs one. set_config is applied by a reset and stays on trial until
`confirm`; otherwise the node puts the previous config.json back and resets again.

    from node import cmdexec
    cmdexec.handle(node, msg, retained, now)     # a message on <base>/cmd
"""

from node import cfgfile, cold, commands


def handle(n, msg, retained, now):
    names = {}
    for s in n.sensing.sensors:
        names[s.name] = list(s.chains)
    cmd, err = commands.parse(msg, retained, n.cfg["commands"]["max_bytes"], names)
    if cmd is None and err is None:
        return  # retained: a stale command never fires
    if err or cmd is None:
        _result(n, commands.result(cmd, False, error=err))  # cmd: the request's id, if any
        return
    if n.safe_reason and cmd["cmd"] not in commands.SAFE:
        why = "safe mode (%s): only %s" % (n.safe_reason, ", ".join(commands.SAFE))
        _result(n, commands.result(cmd, False, error=why))
        return
    try:
        res = run(n, cmd, now)
    except Exception as e:  # noqa: BLE001 - a command must never take the node down
        res = commands.result(cmd, False, error="failed: %r" % e)
    if res:
        _result(n, res)


def _result(n, text):
    n.link.publish(n.topics.result, text, False, 1)


def _validate(doc):
    """The validator's messages for doc; the validator is loaded for this and dropped again."""
    from node import config

    msgs = config.validate(doc)
    del config
    cold.unload("node.config")
    return msgs


def _local_changes(old, new):
    """What new changes of the settings only a deploy may change (the validator's list)."""
    from node import config

    msgs = config.remote_change_problems(old, new)
    del config
    cold.unload("node.config")
    return msgs


def run(n, cmd, now):
    name = cmd["cmd"]
    ok = commands.result
    on_trial = n.trial is not None
    if name == "read":
        n.sensing.read_now(now)
        return ok(cmd, True, sensors=len(n.sensing.sensors))
    if name == "status":
        n.publish_diag()
        return ok(cmd, True)
    if name == "interval":
        sec = cmd["seconds"]
        n.sensing.set_interval(sec, cmd.get("sensor"), now)

        def mut(doc):
            if "sensor" in cmd:
                for sd in doc.get("sensors", []):
                    if sd.get("name", sd.get("type")) == cmd["sensor"]:
                        sd["interval"] = sec
            else:
                doc["interval"] = sec
                for sd in doc.get("sensors", []):
                    sd.pop("interval", None)

        err = cfgfile.change(mut, _validate, on_trial)
        return ok(cmd, True, seconds=sec, saved=err is None, **({"note": err} if err else {}))
    if name == "calibrate":
        return calibrate(n, cmd)
    if name == "get_config":
        return ok(cmd, True, config=commands.redact(n.cfg), source=n.cfg_source, trial=on_trial)
    if name == "set_config":
        cur, _ = cfgfile.read_json(cfgfile.path(cfgfile.CONFIG))
        new = cmd["config"]
        if cur is not None and cmd.get("merge", True):
            new = cfgfile.merge(cur, new)
        timeout = cmd.get("confirm_timeout") or n.cfg["commands"]["confirm_timeout"]
        # Connection and security settings change by deploy only: a broker user must not move
        # the node to another broker (with its password) or lock its owner out.
        base = cfgfile.merged()
        # secrets.json overrides config.json, so compare the file itself as well: a user or
        # password written there must be refused, not accepted and hidden (read again: merge()
        # may have changed `cur` in place)
        disk, _ = cfgfile.read_json(cfgfile.path(cfgfile.CONFIG))

        def check(doc):
            msgs = _validate(doc)
            if not msgs and base is not None:
                msgs = _local_changes(base, doc)
            if not msgs and disk is not None:
                msgs = _local_changes(disk, new)
            return msgs

        problems = cfgfile.start_trial(new, timeout, check, on_trial)
        if problems:
            return ok(cmd, False, error="invalid config: nothing changed", problems=problems[:20])
        n.shutdown("reset", now)
        return ok(cmd, True, applied=True, confirm_within=timeout, rebooting=True)
    if name == "confirm":
        if not on_trial:
            return ok(cmd, False, error="nothing to confirm: no set_config is on trial")
        cfgfile.confirm()
        n.end_trial()
        return ok(cmd, True, kept=True)
    if name == "reboot":
        n.shutdown("reset", now)
        return ok(cmd, True, rebooting=True)
    if name == "leave_safe_mode":
        if n.guard is not None:
            from node import safemode

            safemode.leave(n.guard)
            cold.unload("node.safemode")
        if not n.safe_reason:
            return ok(cmd, True, note="not in safe mode")
        n.shutdown("reset", now)
        return ok(cmd, True, rebooting=True)
    return ok(cmd, False, error="not handled")


def calibrate(n, cmd):
    s = n.sensing.find(cmd["sensor"])
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

    err = cfgfile.change(mut, _validate, n.trial is not None)
    return commands.result(cmd, True, offset=off, scale=sc, two_point=tp, saved=err is None)
