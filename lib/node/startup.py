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


def _load():
    """(cfg, source, problems, salvaged cfg or None), with the validator loaded only here."""
    from node import config

    p = cfgfile.path
    cfg, source, problems = config.load(p(cfgfile.CONFIG), p(cfgfile.SECRETS), p(cfgfile.LASTGOOD))
    spare = None
    if cfg is None:
        spare = salvage(cfgfile.merged(), config.normalize)
    del config
    cold.unload("node.config")
    return cfg, source, problems, spare


def build(board_factory=None, clock=time, t_reset=None, force_safe=None):
    """Load config, decide safe mode, and return (Node or None, safe-mode reason, problems).

    force_safe: a reason to start in safe mode whatever the boot counter says (main.py's
    fallback after the full node crashed in this boot)."""
    from node.safemode import BootGuard

    trial = cfgfile.trial_begin_boot()
    cfg, source, problems, spare = _load()
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
    return node, reason, problems


def wait_for_config():
    """Nothing to reach the network with: idle (no boot loop) until config.json is fixed."""
    print("node: no usable config; waiting for config.json to be fixed")
    while True:
        time.sleep(30)
        cfg, _, _, _ = _load()
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
