# Small honest fakes for the node loop tests: clock, board, sensor drivers, MQTT wrapper.
import time


class Clock:
    """ticks_ms/time driven by advance(); wraps like the real ticks (30-bit on the ESP32)."""

    MASK = (1 << 30) - 1

    def __init__(self, start_ms=0, epoch=1763784000):
        self.ms = start_ms
        self.epoch = epoch

    def ticks_ms(self):
        return self.ms & self.MASK

    def ticks_add(self, a, b):
        return (a + b) & self.MASK

    def ticks_diff(self, a, b):
        d = (a - b) & self.MASK
        return d - (self.MASK + 1) if d > self.MASK // 2 else d

    def time(self):
        return self.epoch + self.ms // 1000

    def gmtime(self, s=0):
        return time.gmtime(s)

    def sleep_ms(self, ms):
        self.ms += ms

    def advance(self, ms):
        self.ms += ms


class WLAN:
    def __init__(self):
        self.up = True

    def isconnected(self):
        return self.up

    def connect(self, ssid, pw):
        pass

    def disconnect(self):
        pass

    def status(self, what=None):
        return -60

    def ifconfig(self):
        return ("10.0.0.5", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class Board:
    def __init__(self):
        self.w = WLAN()
        self.rtc = b""
        self.resets = 0
        self.sleeps = []
        self.fed = 0
        self.cause = "pwron"  # what reset_cause() says at the next build

    def wlan(self):
        return self.w

    def mac_hex(self):
        return "a4cf12345678"

    def reset_cause(self):
        return self.cause

    def woke_from_deepsleep(self):
        return False

    def rtc_memory(self, data=None):
        if data is None:
            return self.rtc
        self.rtc = bytes(data)
        return b""

    def bus_for(self, scfg):
        return None

    def button_held(self):
        return False

    def wdt(self, ms):
        return None

    def feed(self):
        self.fed += 1

    def reset(self):
        self.resets += 1
        raise SystemExit("reset")

    def deepsleep(self, ms):
        self.sleeps.append(ms)
        raise SystemExit("deepsleep")


class Sensor:
    """A driver: values from a function of time, faults when fail() says so."""

    def __init__(self, quantities, values, conversion_ms=10):
        self.QUANTITIES = quantities
        self.values = values  # callable -> dict
        self.conversion_ms = conversion_ms
        self.fail = None  # exception to raise, or None
        self.started = 0

    def start(self):
        if self.fail:
            raise self.fail
        self.started += 1

    def read(self):
        if self.fail:
            raise self.fail
        return self.values()


class MQTT:
    """The robust wrapper's contract, recorded: publish queues, idle() after step()."""

    def __init__(self, *a, **kw):
        self.args = a
        self.kw = kw
        self.connected = False
        self.up = True  # broker reachable
        self.sent = []  # (topic, payload, retain, qos) delivered to the broker
        self.queue = []
        self.subs = []
        self.will = None
        self.cb = None
        self.on_connect = None
        self.on_disconnect = None
        self.disconnects = 0

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, t, m, retain=False, qos=0):
        self.will = (t, m, retain, qos)

    def subscribe(self, t, qos=0):
        self.subs.append(t)

    def connect(self):
        self.step()

    def disconnect(self):
        self.disconnects += 1
        self.connected = False

    def is_connected(self):
        return self.connected

    def idle(self):
        return not self.queue

    def publish(self, t, m, retain=False, qos=0):
        if getattr(self, "refuse", False):
            return False  # outbox full: the wrapper refuses the message
        self.queue.append((t, m if isinstance(m, str) else bytes(m).decode(), retain, qos))
        return True

    def step(self):
        if not self.up:
            if self.connected:
                self.connected = False
                if self.on_disconnect:
                    self.on_disconnect("broker gone")
            return
        if not self.connected:
            self.connected = True
            if self.on_connect:
                self.on_connect(False)
        # deliver what was queued (QoS 0 too: loopback)
        self.sent.extend(self.queue)
        self.queue = []

    def status(self):
        return {"reconnects": 0, "drops": 0}

    def deliver(self, topic, msg, retained=False):
        self.rx_retained = retained
        self.cb(topic.encode(), msg if isinstance(msg, bytes) else msg.encode(), retained)

    def topics(self, t):
        return [m[1] for m in self.sent if m[0] == t]
