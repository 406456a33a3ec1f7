# MQTT 3.1.1 client for MicroPython; see lib/mqtt/README.md for the full API.
"""MQTT 3.1.1 client, umqtt.simple-compatible, that never hangs and never lies.

Every packet, read or written, is bounded as a whole by ``timeout`` (seconds, option): after
CONNECT the link is non-blocking and each wait is a poll against the packet's deadline, so a
peer trickling bytes cannot hold a call. Topics a broker would refuse raise ValueError on
publish and subscribe; inbound PUBLISH with such a topic is dropped and counted
(``bad_topic``); a QoS 2 message past 64 awaiting PUBREL is refused before delivery (the link
is closed, ``refused`` counts it). Cold paths live in mqtt/session.py and mqtt/topic.py,
imported for one call and dropped after. check_msg, wait_msg and
publish send a PINGREQ every keepalive/2 and raise OSError(ETIMEDOUT) when its PINGRESP, or
an expected ack, is late (and nothing is waiting to be read), so a half-open link is found
within 1 x keepalive plus the caller's polling period. Still blocking: DNS (getaddrinfo; set
``c.addr`` to a getaddrinfo entry to skip it) and connect/TLS handshake up to the connect
timeout. Connection faults raise OSError; protocol faults (malformed packet, refusal, TLS
verification) raise MQTTException; both close the socket. TLS: ssl=True with
ssl_params={"cafile": path (PEM or DER), "server_hostname": name (default: server),
"cert_reqs": ssl.CERT_*, "cert"/"key": DER client certificate}, or ssl=an SSLContext. The
TLS code lives in mqtt/tls.py, imported (with ``ssl``) only when a connection uses it.

    from mqtt.client import MQTTClient
    c = MQTTClient("node1", "broker.lan", keepalive=30, max_inflight=8)
    c.set_callback(lambda topic, msg: print(topic, msg))
    c.connect()
    c.subscribe(b"cmd/#", 1)
    c.publish(b"t/temp", b"21.5", qos=1)
    c.check_msg()

Options (keywords after ssl_params): timeout=10 (s, every socket op, CONNACK and acks),
max_inflight=1 (QoS>0 window; 1 = publish returns after the handshake, like umqtt),
max_packet=8192 (inbound; larger packets are drained, counted in ``dropped`` and passed to
on_drop(size), QoS>0 ones still acked), ticks=time.ticks_ms (injectable clock),
sock_factory=f(client, timeout) -> connected stream (injectable socket), on_ack=f(pid, kind),
on_drop=f(size), wbuf=256 (bytes preallocated for outgoing packets and acks; at least 130).

Hooks for a wrapper (lib/mqtt/robust.py):
- on_ack(pid, kind) is called when an ack completes ``pid``: kind is the packet type
  0x40 PUBACK, 0x70 PUBCOMP, 0x90 SUBACK, 0xB0 UNSUBACK.
- ``inflight`` is a dict pid -> packet type still expected (0x40, 0x50 PUBREC, 0x70, 0x90,
  0xB0); connect() clears it, so snapshot it before reconnecting.
- publish(topic, msg, retain, qos, pid=n, dup=True) resends with the same id (MQTT-3.3.1-1);
  pubrel(pid) resends a PUBREL for a QoS 2 message whose PUBREC had arrived (state 0x70).
  publish returns the packet id (0 for QoS 0).
- begin_connect(clean_session, timeout) opens the link and sends CONNECT; finish_connect()
  reads the CONNACK (poll ``c.sock`` first to avoid blocking); connect() does both.
- ``addr`` caches the resolved address (None: resolve on next connect); ``sock`` is None
  when not connected; ``stray`` counts acks matching nothing; ``rx_flags`` holds the first
  byte of the PUBLISH being delivered (retain bit 0, QoS bits 1-2, DUP bit 3).
- OSError means the connection failed (retry); MQTTException carries ``code``: 1..5 CONNACK
  refusal, 0x80 SUBACK failure, or a str reason for a protocol violation.
"""

from micropython import const
import sys
from time import ticks_diff, ticks_add
from errno import ETIMEDOUT, ENOTCONN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_SUBACK = const(0x90)
_UNSUBACK = const(0xB0)
_PINGRESP = const(0xD0)
_POLLIN = const(1)  # select.POLLIN everywhere MicroPython runs
_RBUF = const(64)
_RX2_MAX = const(64)
_len = len  # a module global is found faster than a built-in: used on the hot path


class MQTTException(Exception):
    # args[0] is the code, as in umqtt.simple: CONNACK refusal 1..5, SUBACK 0x80, or a reason.
    @property
    def code(self):
        return self.args[0]


def _b(s):
    # Topics, payloads, ids and credentials may be str or bytes.
    return s.encode() if isinstance(s, str) else s


def _cold(f, *a, m="mqtt.session"):
    # Cold paths are imported for one call and dropped after, off the heap while messages
    # flow: mqtt/session.py (constructor, connect, subscribe, last will, slow reads and
    # writes; its functions carry the names of the methods they serve, so they add no names
    # to the heap) and mqtt/topic.py (a topic not seen lately).
    __import__(m)
    try:
        return getattr(sys.modules[m], f)(*a)
    finally:
        sys.modules.pop(m, None)
        try:
            delattr(sys.modules["mqtt"], m[5:])
        except (AttributeError, KeyError):
            pass


def _hdr(b, t, n):
    # Fixed header: type byte and the Remaining Length varint (MQTT 2.2.3, at most 4 bytes).
    if n > 268435455:
        raise ValueError(n)
    b[0] = t
    i = 1
    while n > 0x7F:
        b[i] = (n & 0x7F) | 0x80
        n >>= 7
        i += 1
    b[i] = n
    return i + 1


class MQTTClient:
    # Set by mqtt/session.py's init (annotations only: no code, no heap).
    inflight: dict
    ticks: Any
    on_ack: Any
    on_drop: Any
    timeout: Any
    keepalive: int
    max_inflight: int
    max_packet: int
    _t: int
    _wb: bytearray
    _rb: bytearray
    _rx2: set
    _rok: set
    _tks: list
    _p: Any
    sock: Any

    def __init__(self, *a, **kw):
        # (client_id, server, port=0, user=None, password=None, keepalive=60, ssl=None,
        # ssl_params={}, **options), read by mqtt/session.py, where this code runs once.
        _cold("__init__", self, a, kw)

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        _cold("set_last_will", self, topic, msg, retain, qos)

    # --- connection (the code is in mqtt/session.py, on the heap only while it runs) ---
    def begin_connect(self, clean_session=True, timeout=None):
        _cold("begin_connect", self, clean_session, timeout)

    def finish_connect(self):
        r = _cold("finish_connect", self)
        if r < 0:
            raise MQTTException(-r)  # 1..5: refused (MQTT 3.2.2.3)
        return r

    def connect(self, clean_session=True, timeout=None):
        self.begin_connect(clean_session, timeout)
        return self.finish_connect()

    def _close(self):
        s = self.sock
        self.sock = self._p = None
        if s:
            try:
                s.close()
            except OSError:
                pass

    def disconnect(self):
        try:
            self._wr(b"\xe0\0", 2)
        except OSError:
            pass  # closing anyway; the will is then published by the broker
        self._close()

    # --- low-level I/O: every path closes the socket on failure ---
    def _err(self, e):
        # An errno is a connection fault (OSError), anything else a protocol one.
        self._close()
        raise (OSError if isinstance(e, int) else MQTTException)(e)

    def _wr(self, b, n):
        s = self.sock
        if not s:
            raise OSError(ENOTCONN)
        try:
            r = s.write(b, n)  # pyright: ignore[reportCallIssue]
        except OSError:
            self._close()
            raise
        if r != n:
            _cold("_wr", self, b, r, n)

    def _rd(self, n, start=0):
        # Read exactly n (<= _RBUF) bytes into the preallocated buffer; what is not there yet
        # is waited for in _more.
        try:
            r = self.sock.readinto(self._rb, n)  # pyright: ignore[reportOptionalMemberAccess]
        except OSError:
            self._close()
            raise
        if r != n:
            _cold("_rd", self, self._rb, r, n, start)
        return self._rb

    def _read(self, n):
        try:
            d = self.sock.read(n) if n else b""  # pyright: ignore[reportOptionalMemberAccess]
        except OSError:
            self._close()
            raise
        if d is None or len(d) != n:
            b = bytearray(n)
            r = None if d is None else len(d)
            if r:
                b[:r] = d  # pyright: ignore[reportCallIssue, reportArgumentType]
            _cold("_rd", self, b, r, n, 0)
            d = bytes(b)
        return d

    def _drain(self, n):
        # Skip n bytes without allocating (oversize inbound packet).
        while n > 0:
            k = min(n, _RBUF)
            self._rd(k)
            n -= k

    def _u16(self):
        b = self._rd(2)
        return b[0] << 8 | b[1]

    def _put(self, t, body):
        # A packet of type t around body, in one write (the cold paths build the body).
        n = len(body)
        b = self._wb
        if n + 5 > len(b):
            b = bytearray(n + 5)
        i = _hdr(b, t, n)
        b[i : i + n] = body
        self._wr(b, i + n)

    def _ack(self, t, pid):
        a = self._wb  # free: every packet is written in full before the next is built
        a[0] = t
        a[1] = 2
        a[2] = pid >> 8
        a[3] = pid & 255
        self._wr(a, 4)

    def _newpid(self):
        # MQTT-2.3.1-1: ids run 1..65535, never 0, never one still in use.
        p = self.pid
        while True:
            p = p % 65535 + 1
            if p not in self.inflight:
                self.pid = p
                return p

    def _due(self):
        # Keepalive and ack deadlines; returns ms until the next one (kept in _dl so the QoS 0
        # path can skip this). A PINGREQ goes out every keepalive/2 whatever the traffic (the
        # broker needs one within keepalive, MQTT-3.1.2-23) and its PINGRESP must come back
        # within keepalive/2, so a dead link is found within 1 x keepalive (MQTT 3.1.2.10).
        # An ack must come within `timeout` of the last progress.
        if not self.sock:
            raise OSError(ENOTCONN)
        now = self.ticks()
        w = self._t
        # An age that reads negative means more than half the ticks period (2^29 ms on the
        # ESP32) passed without a call: overdue, never "just started".
        if self.inflight:
            a = ticks_diff(now, self._ack_t)
            w = w - a if a >= 0 else 0
        k = self.keepalive * 500
        if k:
            d = ticks_diff(now, self._kt)
            d = k - d if d >= 0 else 0
            if d <= 0 and not self._pend:
                self.ping()
                d = k
            if d < w:
                w = d
        if w <= 0:
            # Overdue, unless input is waiting (it may be the answer): then read it first.
            for _ in self._p.ipoll(0):  # pyright: ignore[reportOptionalMemberAccess]
                return 0
            self._err(ETIMEDOUT)
        self._dl = ticks_add(now, w)
        return w

    def _step(self, ms=-1):
        # Wait up to ms (or the next deadline) for one packet and process it.
        w = self._due()
        if 0 <= ms < w:
            w = ms
        for _ in self._p.ipoll(w):  # pyright: ignore[reportOptionalMemberAccess]
            return self._recv()

    # --- inbound ---
    def _recv(self):
        self._pd = None  # a new packet: its deadline starts at its first wait
        b = self._rd(2, 1)
        op = b[0]
        c = b[1]
        n = c & 0x7F
        sh = 7
        while c & 0x80:  # Remaining Length continues: at most 4 bytes in all (MQTT 2.2.3)
            if sh > 21:
                self._err("bad length")
            c = self._rd(1)[0]
            n |= (c & 0x7F) << sh
            sh += 7
        t = op & 0xF0
        if t == _PUBLISH:
            self._pub_in(op, n)
            return t
        if op != (0x62 if t == _PUBREL else t):
            self._err("bad flags")  # MQTT-2.2.2-2
        if t == _PINGRESP and not n:
            self._pend = False
            return t
        if t == _SUBACK and n >= 3:
            pid = self._u16()
            self._rc = self._rd(1)[0]
            self._drain(n - 3)  # more return codes than we asked for
        elif _PUBACK <= t <= _PUBCOMP or t == _UNSUBACK:
            if n != 2:
                self._err("bad length")
            pid = self._u16()
            if t == _PUBREL:
                self._rx2.discard(pid)
                self._ack(0x70, pid)  # MQTT-3.6.4-1: always answer PUBREL
                return t
        else:
            self._err("unexpected packet")
        f = self.inflight
        if f.get(pid) != t:
            self.stray += 1  # late/duplicate ack: consumed so the stream stays in sync
            return t
        self._ack_t = self.ticks()
        if t == _PUBREC:
            f[pid] = _PUBCOMP
            self._ack(0x62, pid)  # MQTT-3.6.1-1: PUBREL flags 0010
        else:
            del f[pid]
            if self.on_ack:
                self.on_ack(pid, t)
        return t

    def _pub_in(self, op, n):
        q = op >> 1 & 3
        if q == 3 or n < 3:
            self._err("bad PUBLISH")  # MQTT-3.3.1-4
        sz = n
        big = n > self.max_packet
        tl = self._u16()
        n -= 2 + tl + (q and 2)
        if not tl or n < 0:
            self._err("bad topic length")  # MQTT-4.7.3-1: topic has at least one char
        if big:
            self._drain(tl)
        else:
            topic = self._read(tl)
        pid = 0
        if q:
            pid = self._u16()
            if not pid:
                self._err("PUBLISH id 0")  # MQTT-2.3.1-1
        if big:
            self._drain(n)
            self.dropped += 1
            if self.on_drop:
                self.on_drop(sz)
        else:
            r2 = self._rx2
            # MQTT 4.3.3 method B: a QoS 2 id seen before PUBREL is a redelivery. Past the
            # bound on those ids the message is refused before anything is delivered: the
            # link is closed, so the broker resends it once earlier ones are released.
            if q == 2 and pid not in r2 and len(r2) >= _RX2_MAX:
                self.refused += 1
                self._err("too many QoS 2 in flight")
            msg = self._read(n)
            # A topic no client may publish (wildcards, NUL, bad UTF-8) is dropped and
            # counted, and acked like any other so the broker moves on; the link stays. The
            # last few good ones are remembered (a set of at most 8, emptied when full).
            t = topic  # pyright: ignore[reportPossiblyUnboundVariable]
            rk = self._rok
            if t not in rk:
                if _cold("bad", t, m="mqtt.topic"):
                    self.bad_topic += 1
                    rk = None
                else:
                    if len(rk) >= 8:
                        rk.clear()
                    rk.add(t)
            if rk is not None:
                if (q < 2 or pid not in r2) and self.cb:
                    self.rx_flags = op
                    self.cb(t, msg)
                if q == 2:
                    r2.add(pid)
        if q == 2:
            self._ack(0x50, pid)
        elif q:
            self._ack(0x40, pid)

    # --- public operations ---
    def check_topic(self, t, filt=False):
        # ValueError naming t unless a broker accepts it as a topic name (filt: a filter); a
        # broker drops a client that sends a bad one. The last 8 immutable names that passed
        # are remembered by identity, so a node's fixed topics are checked once.
        k = self._tks
        if not filt:
            for x in k:
                if x is t:
                    self._tok = t
                    return
        _cold("check", t, filt, m="mqtt.topic")
        if not filt and isinstance(t, (bytes, str)):  # immutable: cannot change once checked
            self._tok = t
            k.insert(0, t)
            if len(k) > 8:
                k.pop()

    def ping(self):
        self._wr(b"\xc0\0", 2)
        self._pend = True
        self._kt = self.ticks()

    def publish(self, topic, msg, retain=False, qos=0, pid=0, dup=False):
        # Hot path for QoS 0 with bytes: no allocation, no type check, one clock read, one
        # write, straight into the preallocated buffer. A str is found when copying it fails,
        # then encoded (QoS 0 has no side effects to undo); QoS 1/2 convert first because
        # they register the id. DUP is only meaningful with QoS > 0 (MQTT-3.3.1-2).
        if topic is not self._tok:
            self.check_topic(topic)
        if qos:
            if not 0 < qos < 3:
                raise ValueError(qos)
            topic = _b(topic)
            msg = _b(msg)
            # Wait for room in the window (taking acks, bounded by _due), then register the
            # id as in flight.
            self._due()
            while len(self.inflight) >= self.max_inflight:
                self._step()
            pid = self._track(pid or self._newpid(), _PUBACK if qos == 1 else _PUBREC)
            h = _PUBLISH | retain | qos << 1 | dup << 3
            n = 4  # topic length and packet id
        else:
            # Nothing due yet: skip _due. _dl is never more than timeout ahead, so a deadline
            # further ahead was passed more than half the ticks period ago.
            d = ticks_diff(self._dl, self.ticks())
            if d <= 0 or d > self._t:
                self._due()
            h = _PUBLISH | retain
            n = 2
        tl = _len(topic)
        ml = _len(msg)
        n += tl + ml  # Remaining Length
        b = self._wb
        if n < 128:  # the usual sensor reading: 2-byte fixed header, topic under 128 bytes
            b[0] = h
            b[1] = n
            b[2] = 0
            b[3] = tl
            i = 4
            n += 2
        else:
            if tl > 65535:
                raise ValueError(tl)
            if n > len(b) - 5:  # a one-off buffer for a big one (not the hot path)
                b = bytearray(n + 5)
            i = _hdr(b, h, n)
            n += i
            b[i] = tl >> 8
            b[i + 1] = tl & 255
            i += 2
        # n: bytes to write; the topic goes at i, the payload at the end
        try:
            b[i : i + tl] = topic  # pyright: ignore[reportCallIssue, reportArgumentType]
            b[n - ml : n] = msg
        except Exception:
            if qos or not (isinstance(topic, str) or isinstance(msg, str)):
                raise
            t = self._tok = _b(topic)  # checked already: as bytes too
            r = self.publish(t, _b(msg), retain)
            self._tok = topic
            return r
        if qos:
            i += tl
            b[i] = pid >> 8
            b[i + 1] = pid & 255
        # One write: no Nagle/delayed-ACK stall between pieces (inlined _wr: hot path).
        s = self.sock
        if not s:
            raise OSError(ENOTCONN)
        try:
            r = s.write(b, n)  # pyright: ignore[reportCallIssue]
        except OSError:
            self._close()
            raise
        if r != n:
            _cold("_wr", self, b, r, n)  # the send buffer is full: finish it in `timeout`
        if qos and self.max_inflight == 1:
            while pid in self.inflight:  # umqtt semantics: return after the ack, bounded
                self._step()
        return pid

    def _track(self, pid, t):
        # Expect ack type t for pid; the ack clock starts when the set stops being empty.
        f = self.inflight
        if not f:
            self._ack_t = self._dl = self.ticks()
        f[pid] = t
        return pid

    def pubrel(self, pid):
        self._ack(0x62, self._track(pid, _PUBCOMP))

    def subscribe(self, topic, qos=0):
        if not 0 <= qos <= 2:
            raise ValueError(qos)
        rc = _cold("subscribe", self, 0x82, topic, qos)
        if rc & 0x80:
            raise MQTTException(rc)  # SUBACK failure (MQTT 3.9.3)
        return rc

    def unsubscribe(self, topic):
        _cold("subscribe", self, 0xA2, topic, -1)

    def wait_msg(self):
        # Block until one packet has been processed (keepalive handled while waiting).
        while True:
            r = self._step()
            if r:
                return r

    def check_msg(self):
        # Process at most one waiting packet; returns its type or None at once.
        return self._step(0)
