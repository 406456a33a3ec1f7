"""Board definitions: the board file read at boot into the pins the board layer needs.

A board file (`boards/<name>.json`) names the I2C buses, the boot button and the LED; a few
well-known boards have built-in definitions so a device without the file still boots. Used
once when node.board builds the Board, then dropped (node.cold).

    bdef = read("esp32-devkitc", ("board.json", "boards/%s.json"))   # None: no file found
    i2c_pins, button_pin, button_active, led_pin = pins("esp32-devkitc", bdef)
"""

import json

# Fallbacks when no board file is on the device (`nodectl build` ships boards/ as lib/boards/).
# tests/mp/test_node_board.py keeps these equal to boards/*.json.
BUILTIN = {
    "esp32-devkitc": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": 0, "led": None},
    "lolin-d32": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": None, "led": 5},
    "esp32-s3-devkitc": {"i2c": [{"sda": 8, "scl": 9, "freq": 400000}], "button": 0, "led": 48},
    # GPIO8 (LED) and GPIO9 (boot button) are strapping pins, so I2C sits on 6/7
    "esp32-c3-supermini": {"i2c": [{"sda": 6, "scl": 7, "freq": 400000}], "button": 9, "led": 8},
    "sim": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": 0, "led": 2},
}


def pin_of(v):
    """A GPIO number from how board files write it: 21, {"gpio": 21}, "GPIO21", "IO21"."""
    if isinstance(v, dict):
        v = v.get("gpio", v.get("pin"))
    if isinstance(v, str):
        s = v.upper()
        if s.startswith("GPIO"):
            s = s[4:]
        elif s.startswith("IO"):
            s = s[2:]
        try:
            return int(s)
        except ValueError:
            return None
    return v


def _first(d, *keys):
    for k in keys:
        if k in d:
            return d[k]
    return None


def read(name, paths):
    """The first board file in `paths` ("%s" replaced by the name) holding an object, or None."""
    for p in paths:
        if "%s" in p:
            p = p % name
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(d, dict):
            return d
    return None


def pins(name, bdef=None):
    """(i2c_pins [(sda, scl, freq)], button_pin, button_active, led_pin) of a board definition
    (None: the built-in one for `name`, else the ESP32 DevKitC's)."""
    bdef = bdef or BUILTIN.get(name) or BUILTIN["esp32-devkitc"]
    buses = _first(bdef, "i2c", "i2c_buses") or []
    if isinstance(buses, dict):
        buses = [buses] if ("sda" in buses or "scl" in buses) else [buses[k] for k in sorted(buses)]
    i2c = [(pin_of(b.get("sda")), pin_of(b.get("scl")), b.get("freq", 100000)) for b in buses]
    b = _first(bdef, "button", "boot_button")
    active = b.get("active", 0) if isinstance(b, dict) else 0
    return i2c, pin_of(b), active, pin_of(bdef.get("led"))
