"""Start-up decides: config (with last-good), set_config trial, safe mode, and the Node.

The validator (node.config) is imported here, used, and dropped before the node allocates.

    from node import startup
    node, reason, problems = startup.build()
    node.run()
"""

import time

from node import cfgfile, cold


def salvage(doc, normalize):
    """From an invalid config, what safe mode can still use: wifi, mqtt, topic. None if not."""
    if not isinstance(doc, dict):
        return None
    probe = {
        "version": 1,
        "board": "esp32-devkitc",
        "topic": doc.get("topic", "node"),
        "wifi": doc.get("wifi"),
        "mqtt": doc.get("mqtt"),
    }
    cfg = normalize(probe)
    if cfg is None:
        probe["topic"] = "node"
        cfg = normalize(probe)
    if cfg is not None and isinstance(doc.get("board"), str):
        cfg["board"] = doc["board"]
    return cfg


def _load(stage=0):
    """(cfg, source, problems, salvaged cfg or None), with the validator loaded only here.

    stage 0 reads config.json (last-good if it is invalid); stage 1 reads only last-good;
    stage 2 gives no full config, only what safe mode can salvage (see build)."""
    from node import config

    p = cfgfile.path
    if stage == 0:
        cfg, source, problems = config.load(
            p(cfgfile.CONFIG), p(cfgfile.SECRETS), p(cfgfile.LASTGOOD)
        )
    elif stage == 1:
        lg, _ = cfgfile.read_json(p(cfgfile.LASTGOOD))
        cfg = None if lg is None else config.normalize(lg)
        source, problems = ("lastgood" if cfg else None), []
    else:
        cfg, source, problems = None, None, []
    spare = None
    if cfg is None:
        try:
            spare = salvage(cfgfile.merged(), config.normalize)
        except Exception:  # noqa: BLE001 - then what last-good holds
            spare = None
        if spare is None and stage:
            lg, _ = cfgfile.read_json(p(cfgfile.LASTGOOD))
            spare = salvage(lg, config.normalize)
    del config
    cold.unload("node.config")
    return cfg, source, problems, spare


def build(board_factory=None, clock=time, t_reset=None, force_safe=None):
    """Load config, decide safe mode, and return (Node or None, safe-mode reason, problems).

    force_safe: a reason to start in safe mode whatever the boot counter says (main.py's
    fallback after the full node crashed in this boot).

    Never raises for what a file holds: an unexpected exception while building from
    config.json falls back to the last-good config, and one from that to safe mode (with only
    the salvaged network settings); if even safe mode cannot be built, (None, reason, problems)
    and main waits for a fixed config instead of resetting."""
    from node import log

    failed = []
    why = None  # safe-mode reason once a fuller start failed (main.py's wording)
    for stage in (0, 1, 2):
        try:
            node, reason, problems = _build(board_factory, clock, t_reset, force_safe, stage, why)
        except Exception as e:  # noqa: BLE001 - anything: try the next, simpler start
            msg = "start failed (%s): %s: %s" % (_STAGES[stage], type(e).__name__, e)
            log.say("config", msg)
            failed.append(msg)
            why = "crashed: %r" % (e,)
            if stage == 0 and _revert_trial():
                failed.append("config.json: the set_config on trial was reverted")
            continue
        if failed and node is not None:
            node.cfg_problems[:0] = failed  # reported in info: the user sees why
        return node, reason, failed + problems
    return None, why, failed


def _revert_trial():
    """A set_config on trial broke the start: put the previous config.json back. True if so."""
    try:
        if cfgfile.read_json(cfgfile.path(cfgfile.TRIAL))[0] is None:
            return False
        cfgfile.revert()
        return True
    except Exception:  # noqa: BLE001 - the trial then ends after TRIAL_BOOTS boots anyway
        return False


_STAGES = ("config.json", "last-good", "safe mode")


def _build(board_factory, clock, t_reset, force_safe, stage, why):
    from node.safemode import BootGuard

    trial = cfgfile.trial_begin_boot() if stage == 0 else None
    cfg, source, problems, spare = _load(stage)
    guard = BootGuard(cfgfile.path("bootstate.json"))
    name = cfg["board"] if cfg else "esp32-devkitc"
    if board_factory is None:
        from node.board import Board

        board_factory = Board.load
    board = board_factory(name)
    held = cfg is None or cfg["safe_mode"]["button"]
    bad = cfg["safe_mode"]["bad_boots"] if cfg else 3
    power_on = board.reset_cause() == "pwron"
    reason = guard.begin(bad, cfg is not None, held and board.button_held(), power_on)
    if force_safe and not reason:
        reason = force_safe
    if stage == 2 or (stage == 1 and cfg is None):
        reason = why  # safe mode because the fuller starts failed: say so, not the guard's
    from node import log

    for p in problems:
        log.say("config", p)
    if reason:
        log.say("safe mode", reason)
        if cfg is None:
            if spare is None:
                return None, reason, problems
            cfg, source = spare, "salvaged"
        cfg["sensors"] = []
    if source != "config":
        trial = None
    cold.unload("node.safemode")  # the Node keeps the counter file's path only
    from node.app import Node

    node = Node(cfg, board, clock, reason, source or "config", problems, guard.path, trial, t_reset)
    from node.link import tls_mode

    if cfg and tls_mode(cfg["mqtt"]) == "insecure":  # every boot: the user chose no cert check
        log.say("tls", "INSECURE: broker certificate not checked (mqtt.tls_insecure)")
    return node, reason, problems


def wait_for_config():
    """Nothing to reach the network with: idle (no boot loop) until config.json is fixed."""
    print("node: no usable config; waiting for config.json to be fixed")
    while True:
        time.sleep(30)
        try:
            cfg, _, _, _ = _load()
        except Exception:  # noqa: BLE001 - keep waiting, never a reset loop
            cfg = None
        if cfg is not None:
            import machine

            machine.reset()


def main(t_reset=None):
    """Run the node; t_reset is time.ticks_ms() taken as early as possible after the reset."""
    node, _, _ = build(t_reset=t_reset)
    if node is None:
        wait_for_config()
    else:
        node.run()
