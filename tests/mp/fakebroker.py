# A scripted, in-memory MQTT broker for MicroPython tests of lib/mqtt.
#
# FakeSocket is a pollable stream (io.IOBase with ioctl) that plays back bytes the test queued
# (`feed`) and records what the client wrote (`tx`). Like a MicroPython stream in blocking
# mode it returns all that was asked for when it has it; when its queue runs dry a read
# returns what there is, or None, as a real socket whose timeout expired does, so a
# truncated packet becomes a timeout, not a hang. FakeBroker parses the client's packets
# with its own decoder (not the client's) and answers like a broker would, unless told to
# stay silent or drop some types.
#
#   fb = FakeBroker()
#   c = MQTTClient("id", "fake", sock_factory=fb.factory, ticks=fb.clock)
#   c.connect(); c.publish(b"t", b"m", qos=1)
#   assert fb.packets[-1] == (0x32, b"\x00\x01t\x00\x01m")
import io
from time import ticks_add


class Clock:
    # Injectable ticks_ms: moves only when told (plus `step` per call, so loops still end).
    def __init__(self, t=0, step=0):
        self.t = t
        self.step = step

    def __call__(self):
        self.t = ticks_add(self.t, self.step)
        return self.t

    def advance(self, ms):
        self.t = ticks_add(self.t, ms)


class FakeSocket(io.IOBase):
    def __init__(self, data=b"", on_write=None):
        self.rx = bytearray(data)  # broker -> client, not yet read
        self.tx = bytearray()  # client -> broker, everything written
        self.writes = 0  # number of write calls
        self.eof = False  # True: an empty queue means the peer closed (read returns 0)
        self.closed = False
        self.timeout = None
        self.on_write = on_write

    def feed(self, b):
        self.rx.extend(b)

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return arg & 1 if (self.rx or self.eof or self.closed) else 0
        return -1  # no file descriptor: poll falls back to calling us

    def _take(self, n):
        if self.closed:
            raise OSError(9)
        if not self.rx:
            return None
        n = min(n, len(self.rx))
        d = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return d

    def readinto(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        d = self._take(n)
        if d is None:
            return 0 if self.eof else None
        for i in range(len(d)):
            buf[i] = d[i]
        return len(d)

    def read(self, n):
        d = self._take(n)
        if d is None:
            return b"" if self.eof else None
        return d

    def write(self, b, n=-1):
        if self.closed:
            raise OSError(9)
        if n < 0:
            n = len(b)
        self.tx.extend(bytes(b)[:n])
        self.writes += 1
        if self.on_write:
            self.on_write(self)
        return n

    def settimeout(self, t):
        self.timeout = t

    def setblocking(self, f):
        self.timeout = None if f else 0

    def close(self):
        self.closed = True


class Trickle(FakeSocket):
    # A broker that sends one byte every `gap` ms of the injected clock. Polled, it makes the
    # next byte arrive (the clock moves on by `gap`); a non-blocking read returns what has
    # arrived. Blocking (timeout above 0, as a real socket with a 1 s timeout between bytes
    # 250 ms apart never times out), a read waits for all it was asked for, however long.
    def __init__(self, clock, gap, data=b"", timeout=None, on_write=None):
        super().__init__(data, on_write)
        self.clock = clock
        self.gap = gap
        self.timeout = timeout
        self.avail = 0

    def ioctl(self, req, arg):
        if req != 3:
            return -1
        if not self.avail and self.rx:
            self.clock.advance(self.gap)
            self.avail = 1
        return arg & 1 if self.avail else 0

    def _take(self, n):
        if not self.rx:
            return None
        if self.timeout != 0 and self.avail < n:
            self.clock.advance(self.gap * (n - self.avail))
            self.avail = n
        n = min(n, self.avail, len(self.rx))
        if not n:
            return None
        self.avail -= n
        d = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return d


def encode_rl(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body=b""):
    return bytes((first,)) + encode_rl(len(body)) + body


def u16(n):
    return bytes((n >> 8, n & 255))


def mstr(s):
    return u16(len(s)) + s


def parse(buf):
    # Split a byte stream into complete packets [(first byte, body)] and the bytes consumed.
    out = []
    i = 0
    while i + 2 <= len(buf):
        n = 0
        mul = 1
        j = i + 1
        while True:
            if j >= len(buf):
                return out, i
            c = buf[j]
            n += (c & 127) * mul
            mul *= 128
            j += 1
            if not c & 128:
                break
        if j + n > len(buf):
            break
        out.append((buf[i], bytes(buf[j : j + n])))
        i = j + n
    return out, i


class FakeBroker:
    # Answers CONNECT, PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE and PINGREQ like a broker.
    # connack=(session_present, return_code) or None for silence; drop: set of packet types
    # (first byte & 0xF0) to leave unanswered; granted: SUBACK code.
    def __init__(self, connack=(0, 0), granted=None, trickle=None):
        self.connack = connack
        self.trickle = trickle  # (clock, gap ms): bytes come one at a time, gap apart
        self.granted = granted
        self.drop = set()
        self.clock = Clock()
        self.packets = []  # every client packet: (first byte, body)
        self.socks = []
        self.sock = None

    def factory(self, client, timeout):
        if self.trickle:
            s = Trickle(self.trickle[0], self.trickle[1], on_write=self._on_write)
        else:
            s = FakeSocket(on_write=self._on_write)
        s.done = 0
        self.sock = s
        self.socks.append(s)
        return s

    def feed(self, b):
        self.sock.feed(b)

    def types(self):
        return [p[0] for p in self.packets]

    def _on_write(self, s):
        pk, used = parse(s.tx[s.done :])
        s.done += used
        for first, body in pk:
            self.packets.append((first, body))
            t = first & 0xF0
            if t in self.drop:
                continue
            r = self.answer(first, body)
            if r:
                s.feed(r)

    def answer(self, first, body):
        t = first & 0xF0
        if t == 0x10 and self.connack:
            return packet(0x20, bytes(self.connack))
        if t == 0x30:
            q = first >> 1 & 3
            if q:
                tl = body[0] << 8 | body[1]
                pid = body[2 + tl : 4 + tl]
                return packet(0x40 if q == 1 else 0x50, pid)
        if t == 0x60:
            return packet(0x70, body[:2])
        if t == 0x80:
            g = self.granted
            if g is None:
                g = body[-1]
            return packet(0x90, body[:2] + bytes((g,)))
        if t == 0xA0:
            return packet(0xB0, body[:2])
        if t == 0xC0:
            return packet(0xD0)
        return None


def connected(fb=None, **kw):
    # A client connected to a FakeBroker, with the fake clock injected.
    from mqtt.client import MQTTClient

    fb = fb or FakeBroker()
    kw.setdefault("ticks", fb.clock)
    c = MQTTClient(kw.pop("client_id", "cid"), "fake", sock_factory=fb.factory, **kw)
    c.connect()
    return c, fb
