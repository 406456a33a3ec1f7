# Helpers for the tests of mqtt.robust: a clock the test moves by hand (with ticks wrap), a
# fake WLAN station, and a deterministic random source.
import io
import time


class FakeClock:
    """ticks_ms/ticks_add/ticks_diff with MicroPython semantics over a period of 2**bits.
    Time only moves when the test calls advance(), or, with
    follow_real=True, also as real time passes (so socket timeouts and our deadlines agree)."""

    def __init__(self, start=0, bits=None, follow_real=False):
        # Default: the port's own period (2**30 on the ESP32, 2**62 on the 64-bit Unix
        # port), because the MQTT client takes ticks_ms from us but uses time.ticks_diff.
        self.period = (1 << bits) if bits else time.ticks_add(0, -1) + 1
        self._mask = self.period - 1
        self._half = self.period >> 1
        self._t = start & self._mask
        self._real = time.ticks_ms() if follow_real else None

    def ticks_ms(self):
        if self._real is not None:
            r = time.ticks_ms()
            self._t = (self._t + time.ticks_diff(r, self._real)) & self._mask
            self._real = r
        return self._t

    def ticks_add(self, t, d):
        return (t + d) & self._mask

    def ticks_diff(self, a, b):
        return ((a - b + self._half) & self._mask) - self._half

    def advance(self, ms):
        self._t = (self._t + ms) & self._mask

    # Some code sleeps through the clock object; keep it honest with a fake.
    def sleep_ms(self, ms):
        self.advance(ms)


class FakeWLAN:
    """The part of network.WLAN(STA_IF) the wrapper may use. Counts calls that would
    bounce the radio, which the wrapper must never make."""

    def __init__(self, up=True):
        self.up = up
        self.polls = 0
        self.bounces = 0

    def isconnected(self):
        self.polls += 1
        return self.up

    def status(self, *a):
        return 1010 if self.up else 1000

    def active(self, *a):
        if a:
            self.bounces += 1
        return True

    def connect(self, *a, **k):
        self.bounces += 1

    def disconnect(self):
        self.bounces += 1


class SeqRNG:
    """rng(n) -> int in [0, n): a fixed fraction of n (0.0 .. 1.0), or the given sequence."""

    def __init__(self, frac=0.5):
        self.frac = frac
        self.calls = 0

    def __call__(self, n):
        self.calls += 1
        v = int(n * self.frac)
        return v if v < n else n - 1


def heap():
    import gc

    gc.collect()
    return gc.mem_alloc()


def pump(c, clock=None, ms=0, until=None, step_ms=10, limit_ms=5000):
    """Call c.step() repeatedly (sleeping step_ms real ms between calls and advancing a
    fake clock by ms per call if given) until until() is true or limit_ms of real time pass.
    Returns the real ms taken; fails if the limit passes."""
    t0 = time.ticks_ms()
    while True:
        c.step()
        if until is not None and until():
            return time.ticks_diff(time.ticks_ms(), t0)
        if time.ticks_diff(time.ticks_ms(), t0) > limit_ms:
            raise AssertionError("not met within %d ms; status %r" % (limit_ms, c.status()))
        if clock is not None and ms:
            clock.advance(ms)
        if step_ms:
            time.sleep_ms(step_ms)


class Switch:
    """A socket factory in front of a FakeBroker that can be 'down' (connection refused),
    and counts the connections made."""

    def __init__(self, fb):
        self.fb = fb
        self.up = True
        self.calls = 0

    def factory(self, client, timeout):
        self.calls += 1
        if not self.up:
            raise OSError(111)  # ECONNREFUSED
        return self.fb.factory(client, timeout)


def fake_robust(fb=None, clock=None, **kw):
    """A robust client on a FakeBroker (behind a Switch) with a FakeClock; returns
    (client, fb, clock, switch). Backoff delays take the bottom of their window (backoff_min)
    unless rng is given."""
    from fakebroker import FakeBroker
    from mqtt.robust import MQTTClient

    fb = fb or FakeBroker()
    clk = clock or FakeClock(start=1000)
    sw = Switch(fb)
    kw.setdefault("rng", SeqRNG(0.0))
    kw.setdefault("spill_bytes", 0)  # RAM outbox only, unless a test gives a folder
    c = MQTTClient(kw.pop("client_id", "cid"), "fake", sock_factory=sw.factory, clock=clk, **kw)
    return c, fb, clk, sw


def publishes(fb, since=0):
    """The PUBLISH packets the client wrote: [(dup, qos, pid, topic, msg)]."""
    out = []
    for first, body in fb.packets[since:]:
        if first & 0xF0 != 0x30:
            continue
        q = first >> 1 & 3
        tl = body[0] << 8 | body[1]
        topic = body[2 : 2 + tl]
        i = 2 + tl
        pid = 0
        if q:
            pid = body[i] << 8 | body[i + 1]
            i += 2
        out.append((first >> 3 & 1, q, pid, topic, body[i:]))
    return out


class Tap(io.IOBase):
    """A real TCP connection to 127.0.0.1:port, pollable, that records the MQTT packets the
    client writes (first byte, body), so a test sees DUP flags and packet ids on the wire."""

    def __init__(self, port, timeout, log):
        import select
        import socket

        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        except OSError:
            s.close()
            raise
        self.s = s
        self.p = select.poll()
        self.p.register(s, select.POLLIN)
        self.log = log
        self.buf = b""

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            r = 0
            for _, ev in self.p.poll(0):
                r |= ev
            return r & (arg | 0x18)  # POLLHUP and POLLERR are always reported
        return -1

    def readinto(self, b, n=-1):
        return self.s.readinto(b, n) if n >= 0 else self.s.readinto(b)

    def read(self, n):
        return self.s.read(n)

    def write(self, b, n=-1):
        d = bytes(b[:n] if n >= 0 else b)
        r = self.s.write(d)
        from fakebroker import parse

        self.buf += d
        pk, used = parse(self.buf)
        self.buf = self.buf[used:]
        self.log.extend(pk)
        return r

    def settimeout(self, t):
        self.s.settimeout(t)

    def setblocking(self, f):
        self.s.setblocking(f)

    def close(self):
        self.s.close()


class Wire:
    """sock_factory for the client: Tap connections to port; .packets is everything written
    on every connection, in order, .conns the number of connections made."""

    def __init__(self, port):
        self.port = port
        self.packets = []
        self.conns = 0

    def factory(self, client, timeout):
        self.conns += 1
        return Tap(self.port, timeout, self.packets)

    def publishes(self):
        class _F:
            pass

        f = _F()
        f.packets = self.packets
        return publishes(f)


def check_dups(pubs):
    """Every repeated payload went out with DUP=1 and its first packet id. Returns the
    number of repeats."""
    first = {}
    n = 0
    for dup, _q, pid, _topic, msg in pubs:
        if msg in first:
            n += 1
            why = ("repeat without DUP or with a new id", msg, dup, pid, first[msg])
            assert dup == 1 and pid == first[msg], why
        else:
            assert dup == 0, ("DUP on a first send", msg)
            first[msg] = pid
    return n
