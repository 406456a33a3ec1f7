"""Start-up: config (with last-good), safe-mode decision, set-config trial, and the Node.

from node import startup
node, reason, problems = startup.build()
node.run()
"""

import time

# node.config is imported inside the functions, never kept at module level, so that it can be
# dropped from the heap once the config is loaded (it is the largest module of the node).
_ROOT = ""


def _path(name):
    return _ROOT + name


def _remove(p):
    import os

    try:
        os.remove(p)
    except OSError:
        pass


def revert_trial():
    """Put the config from before an unconfirmed set_config back."""
    import os

    try:
        os.stat(_path("config.json.bak"))
        _remove(_path("config.json"))
        os.rename(_path("config.json.bak"), _path("config.json"))
    except OSError:
        pass
    _remove(_path("config.trial"))


def _trial_state():
    """The trial marker of an unconfirmed set_config (counting boots), or None."""
    from node import cfgfile

    t, _ = cfgfile.read_json(_path("config.trial"))
    if not isinstance(t, dict):
        return None
    t["boots"] = t.get("boots", 0) + 1
    if t["boots"] > 2:
        # The new config did not make it to a confirm in two boots: go back.
        revert_trial()
        return None
    cfgfile.save_json(_path("config.trial"), t)
    return t


def salvage(doc):
    """From an invalid config, what safe mode can still use: wifi, mqtt, topic. None if not."""
    if not isinstance(doc, dict):
        return None
    from node import config as _config

    probe = {
        "version": 1,
        "board": "esp32-devkitc",
        "topic": doc.get("topic", "node"),
        "wifi": doc.get("wifi"),
        "mqtt": doc.get("mqtt"),
    }
    cfg = _config.normalize(probe)
    if cfg is None:
        probe["topic"] = "node"
        cfg = _config.normalize(probe)
    if cfg is not None and isinstance(doc.get("board"), str):
        cfg["board"] = doc["board"]
    return cfg


def build(board_factory=None, clock=time, t_reset=None, force_safe=None):
    """Load config, decide safe mode, and return a ready Node (not started).

    force_safe: a reason to start in safe mode whatever the boot counter says (main.py's
    fallback after the full node crashed in this boot)."""
    from node import config as _config
    from node.safemode import BootGuard

    trial = _trial_state()
    cfg, source, problems = _config.load(
        _path("config.json"), _path("secrets.json"), _path("config.lastgood.json")
    )
    guard = BootGuard(_path("bootstate.json"))
    name = cfg["board"] if cfg else "esp32-devkitc"
    if board_factory is None:
        from node.board import Board

        board_factory = Board.load
    board = board_factory(name)
    held = cfg is None or cfg["safe_mode"]["button"]
    bad = cfg["safe_mode"]["bad_boots"] if cfg else 3
    reason = guard.begin(bad, cfg is not None, held and board.button_held())
    if force_safe and not reason:
        reason = force_safe
    for p in problems:
        print("config:", p)
    if reason:
        print("node: safe mode:", reason)
        if cfg is None:
            doc, _ = _config.load_doc(_path("config.json"), _path("secrets.json"))
            cfg = salvage(doc)
            if cfg is None:
                return None, reason, problems
            source = "salvaged"
        cfg["sensors"] = []
    if source != "config":
        trial = None
    # The validator has done its job: give its heap back before the node allocates.
    del _config
    from node.app import Node, _unload

    _unload("node.config")
    return (
        Node(
            cfg, board, clock, reason, source or "config", problems, guard, trial, t_reset=t_reset
        ),
        reason,
        problems,
    )


def main(t_reset=None):
    """Run the node; t_reset is time.ticks_ms() taken as early as possible after the reset."""
    node, reason, problems = build(t_reset=t_reset)
    if node is None:
        # Nothing to reach the network with: idle (no boot loop), look for a fixed config.
        print("node: no usable config; waiting for config.json to be fixed")
        while True:
            time.sleep(30)
            from node import config as _config

            cfg, _, _ = _config.load(_path("config.json"), _path("secrets.json"), "")
            if cfg is not None:
                import machine

                machine.reset()
    node.run()
