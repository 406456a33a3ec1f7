# Nothing a config holds sends the node into a reset loop: an unexpected exception while the
# node is built from config.json falls back to last-good, then to safe mode (startup.build).
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

import node_fakes as F
import node_world
from node import cfgfile, startup


class Boom(OSError):
    pass


def _files(cfg_board, lastgood_board=None):
    node_world.tmp()
    d = node_world.doc(board=cfg_board)
    with open("config.json", "w") as f:
        json.dump(d, f)
    if lastgood_board is not None:
        cfgfile.keep_good(node_world.doc(board=lastgood_board), cfgfile.LASTGOOD)


def _factory(board, fails):
    # the board layer raises for the first `fails` builds (a board file that passes the
    # validator but names a pin this chip lacks, injected here), then works
    n = [0]

    def load(name):
        n[0] += 1
        if n[0] <= fails:
            raise Boom("pin 99 does not exist")
        return board

    return load


def test_exception_building_from_config_falls_back_to_last_good():
    _files("lolin-d32", "sim")
    board = F.Board()
    node, reason, problems = startup.build(_factory(board, 1), F.Clock())
    assert node is not None and reason is None
    assert node.cfg_source == "lastgood"
    assert node.cfg["board"] == "sim" and node.cfg["sensors"], node.cfg
    msg = "start failed (config.json): Boom: pin 99 does not exist"
    assert problems[0] == msg and node.cfg_problems[0] == msg, problems


def test_exception_from_config_and_last_good_starts_safe_mode():
    _files("lolin-d32", "sim")
    board = F.Board()
    node, reason, problems = startup.build(_factory(board, 2), F.Clock())
    assert node is not None, problems
    assert reason == "crashed: Boom('pin 99 does not exist',)", reason
    assert problems[:2] == [
        "start failed (config.json): Boom: pin 99 does not exist",
        "start failed (last-good): Boom: pin 99 does not exist",
    ], problems
    assert node.safe_reason == reason and node.cfg["sensors"] == []
    # safe mode still reaches the broker the config names
    assert node.cfg["mqtt"]["host"] == "127.0.0.1" and node.cfg["wifi"][0]["ssid"] == "simnet"


def test_exception_without_last_good_starts_safe_mode():
    _files("lolin-d32")
    node, reason, _ = startup.build(_factory(F.Board(), 1), F.Clock())
    assert node is not None and node.safe_reason == reason, reason
    assert reason.startswith("crashed: Boom"), reason


def test_build_never_raises_even_when_every_start_fails():
    _files("lolin-d32", "sim")

    def always(name):
        raise Boom("no board at all")

    node, reason, problems = startup.build(always, F.Clock())
    assert node is None
    assert reason.startswith("crashed: Boom"), reason
    assert problems[2] == "start failed (safe mode): Boom: no board at all", problems


def test_a_set_config_on_trial_that_breaks_the_start_is_reverted_at_once():
    _files("lolin-d32", "sim")
    old = node_world.doc(board="sim")
    cfgfile.save_json(cfgfile.BACKUP, old)  # what start_trial keeps of the running config
    cfgfile.save_json(cfgfile.TRIAL, {"timeout": 60, "boots": 0})
    node, reason, problems = startup.build(_factory(F.Board(), 1), F.Clock())
    assert node is not None and reason is None and node.cfg_source == "lastgood"
    assert "config.json: the set_config on trial was reverted" in problems, problems
    with open("config.json") as f:
        assert json.load(f) == old
    assert cfgfile.read_json(cfgfile.TRIAL)[0] is None
