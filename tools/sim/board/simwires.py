"""Pins and buses of the simulated board: GPIO levels and IRQs, I2C and 1-Wire wires with the
device models on them. Re-exported by simenv (simenv.drive, simenv.i2c_wires, ...)."""


def _clock():
    import simenv  # at call time: simenv imports this module while it loads

    return simenv.clock


def pin_id(p):
    """A GPIO number from a machine.Pin or an int."""
    if p is None:
        return None
    return p._id if hasattr(p, "_id") else int(p)


# ---- pins ----------------------------------------------------------------------------------
class PinState:
    """One GPIO: what the firmware set and what the outside world drives."""

    def __init__(self, n):
        self.n = n
        self.mode = None  # machine.Pin.IN / OUT / OPEN_DRAIN
        self.pull = None
        self.out = 0  # the level the firmware writes
        self.ext = None  # the level the world drives, None = floating
        self.handler = None
        self.trigger = 0
        self.last = None

    def level(self):
        if self.ext is not None:
            return self.ext
        if self.mode == 1 and self.out is not None:  # OUT
            return self.out
        if self.mode == 2:  # OPEN_DRAIN: low when 0, pulled up when released
            return 0 if self.out == 0 else 1
        if self.pull == 1:  # PULL_UP
            return 1
        return 0


pins = {}


def pin(n):
    p = pins.get(n)
    if p is None:
        p = pins[n] = PinState(n)
        _populate()  # scripted inputs start with the first pin
    return p


pin_objs = {}


def drive(n, level):
    """Drive GPIO n from outside (None releases it); fires the IRQ handler on a matching edge."""
    p = pin(n)
    old = p.level()
    p.ext = level
    new = p.level()
    if p.handler is not None and old != new:
        if (new and p.trigger & 2) or (not new and p.trigger & 1):  # IRQ_RISING=2, IRQ_FALLING=1
            p.handler(pin_objs.get(n))


def pulse(n, count=1, low_ms=20, high_ms=20):
    """count low pulses on GPIO n (a reed switch to ground), advancing the clock."""
    for _ in range(count):
        drive(n, 0)
        _clock().advance(low_ms)
        drive(n, 1)
        _clock().advance(high_ms)


# ---- buses ---------------------------------------------------------------------------------
class Nack(Exception):
    """A device did not acknowledge (address or a data byte)."""


class I2CWires:
    """The SDA/SCL wires with the device models on them, shared by every I2C/SoftI2C on them."""

    def __init__(self, sda):
        self.sda = sda
        self.devices = []
        self.stuck = False  # SDA held low by someone: every transfer times out

    def attach(self, model):
        self.detach(model.address)
        self.devices.append(model)
        return model

    def detach(self, address):
        self.devices = [d for d in self.devices if d.address != address]

    def device(self, address):
        for d in self.devices:
            if d.address == address:
                return d
        return None


_i2c = {}


def _wires(table, key, cls):
    # One bus object per pin, made on first use (which also builds the scenario's devices).
    w = table.get(key)
    if w is None:
        w = table[key] = cls(key)
        _populate()
    return w


def i2c_wires(sda):
    return _wires(_i2c, sda, I2CWires)


class OneWireWires:
    def __init__(self, n):
        self.pin = n
        self.devices = []

    def attach(self, model):
        self.devices.append(model)
        return model


_ow = {}


def ow_wires(n):
    return _wires(_ow, n, OneWireWires)


dht_devices = {}  # pin -> model
adc_sources = {}  # pin -> model with .voltage()

_populated = False


def _populate():
    # Build the scenario's device models once, on first use of any bus.
    global _populated
    if _populated:
        return
    _populated = True
    import simenv

    if simenv.scenario_data.get("devices"):
        import scenario

        scenario.attach_all(simenv.scenario_data, simenv.board)
