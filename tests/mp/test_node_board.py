# The node's built-in board fallbacks must say what boards/*.json say, and a board file found
# on the device (lib/boards/<name>.json, as `nodectl build` ships it) wins over them.
import os

from node.board import Board
from node.boardfile import BUILTIN as _BUILTIN

BOARDS = "../../boards/"


def _pins(b):
    return (b.i2c_pins, b.button_pin, b.led_pin)


def test_every_board_definition_has_a_matching_builtin_fallback():
    names = [f[:-5] for f in os.listdir(BOARDS) if f.endswith(".json")]
    assert len(names) >= 5, names
    for name in names:
        assert name in _BUILTIN, name
        from_file = Board.load(name, paths=(BOARDS + "%s.json",))
        builtin = Board(name)
        assert _pins(from_file) == _pins(builtin), (name, _pins(from_file), _pins(builtin))


def test_board_file_on_the_device_wins_over_the_builtin():
    b = Board.load("esp32-c3-supermini", paths=(BOARDS + "%s.json",))
    assert b.i2c_pins == [(6, 7, 400000)]
    assert b.button_pin == 9 and b.led_pin == 8
    # an unknown name with no file falls back to the DevKitC pins rather than failing to boot
    assert Board.load("no-such-board", paths=("nowhere/%s.json",)).i2c_pins == [(21, 22, 400000)]
