# MQTT 3.1.1 client for MicroPython; see lib/mqtt/README.md for the full API.
"""MQTT 3.1.1 client, umqtt.simple-compatible, that never hangs and never lies.

Every socket operation is bounded by ``timeout`` (seconds, option). check_msg, wait_msg and
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
import socket
import select
from time import ticks_ms, ticks_diff, ticks_add
from errno import ETIMEDOUT, ECONNRESET, ENOTCONN

_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_PUBREC = const(0x50)
_PUBREL = const(0x60)
_PUBCOMP = const(0x70)
_SUBACK = const(0x90)
_UNSUBACK = const(0xB0)
_PINGRESP = const(0xD0)
_STREAM = const(1)  # socket.SOCK_STREAM on Linux and lwIP alike
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
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=60,
                 ssl=None, ssl_params={}, **kw):
        if not port:
            port = 8883 if ssl else 1883
        if password is not None and user is None:
            raise ValueError(password)  # MQTT-3.1.2-22: a password needs a user name
        self.client_id = _b(client_id)
        self.server = server
        self.port = port
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.ssl_params = ssl_params
        self.cb = self._lw = self.sock = self.addr = self._tok = self._pd = None
        self.pid = self.stray = self.dropped = self.rx_flags = self._dl = 0
        self.bad_topic = self.refused = 0  # inbound PUBLISH dropped: bad topic; QoS 2 refused
        self.inflight = {}
        self._rx2 = set()  # inbound QoS 2 ids between PUBREC and PUBREL (exactly once)
        g = kw.get
        self.timeout = g("timeout", 10)
        self.max_inflight = g("max_inflight", 1)
        self.max_packet = g("max_packet", 8192)
        self.ticks = g("ticks", ticks_ms)
        self.sock_factory = g("sock_factory")
        self.on_ack = g("on_ack")
        self.on_drop = g("on_drop")
        # Outgoing packets and acks (at least 130 bytes: every PUBLISH with a one-byte
        # Remaining Length fits); inbound fixed headers, ids and drained bytes.
        self._wb = bytearray(max(g("wbuf", 256), 130))
        self._rb = bytearray(_RBUF)

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        if not (0 <= qos <= 2 and topic):
            raise ValueError(qos)
        self._lw = (_b(topic), _b(msg), qos, retain)

    # --- connection ---
    def begin_connect(self, clean_session=True, timeout=None):
        self._close()
        t = self.timeout if timeout is None else timeout
        f = self.sock_factory
        if f:
            s = f(self, t)
        else:
            a = self.addr
            if not a:
                a = self.addr = socket.getaddrinfo(self.server, self.port, 0, _STREAM)[0]
            s = socket.socket(a[0], _STREAM, a[2])
            try:
                s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: same numbers on Linux and lwIP
            except OSError:
                pass
        self._raw = s
        try:
            s.settimeout(t)  # bounds connect, TLS handshake and CONNACK
            if not f:
                s.connect(a[-1])  # pyright: ignore[reportPossiblyUnboundVariable]
            if self.ssl:
                from .tls import wrap  # lazy: only TLS nodes load ssl and the TLS code

                s = wrap(self, s)
        except Exception as e:
            s.close()
            if isinstance(e, ValueError):  # from wrap: TLS verification or configuration
                raise MQTTException(str(e))
            raise
        self.sock = s
        self._t = int(t * 1000)
        p = self._p = select.poll()
        p.register(s, _POLLIN)
        self.inflight.clear()
        self._pend = False  # a PINGREQ is unanswered
        self._kt = self._ack_t = self._dl = self.ticks()
        self._clean = clean_session
        # CONNECT, MQTT 3.1.2: protocol name, level 4, flags, keepalive; payload 3.1.3.
        fl = 2 if clean_session else 0
        p = [self.client_id]
        w = self._lw
        if w:
            fl |= 4 | w[2] << 3 | (w[3] and 0x20)
            p += w[:2]
        if self.user is not None:
            fl |= 0x80
            p.append(_b(self.user))
            if self.pswd is not None:
                fl |= 0x40
                p.append(_b(self.pswd))
        k = self.keepalive
        self._pkt(0x10, bytes((0, 4, 77, 81, 84, 84, 4, fl, k >> 8, k & 255)), p)
        # From here on the link is non-blocking: every wait is a poll bounded by a deadline
        # for the whole packet, so a peer trickling bytes cannot stretch one read.
        self._raw.settimeout(0)

    def finish_connect(self):
        # MQTT-3.2.0-1: the first packet from the server is a CONNACK (always 4 bytes).
        self._pd = None
        b = self._rd(4, 1)
        sp = b[2]
        # Flags bits 7-1 are reserved; a session present after a clean start is a lie
        # (MQTT-3.2.2-1); a refused CONNACK has no session (MQTT-3.2.2-4).
        if b[0] != 0x20 or b[1] != 2 or sp > 1 or sp and (self._clean or b[3]):
            self._err("bad CONNACK")
        if b[3]:
            self._close()
            raise MQTTException(b[3])  # 1..5: refused (MQTT 3.2.2.3)
        if not sp:
            self._rx2.clear()  # no session: the broker forgot its QoS 2 state too
        self._t = int(self.timeout * 1000)
        self._kt = self.ticks()
        return sp

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
            self._wrest(b, r, n)

    def _wrest(self, b, r, n):
        # The socket took only part of a packet (its send buffer is full): write the rest as
        # it drains, the whole packet within `timeout`.
        s = self.sock
        p = select.poll()
        p.register(s, 4)  # POLLOUT
        mv = memoryview(b)
        got = r or 0
        dl = ticks_add(self.ticks(), self._t)
        while got < n:
            w = ticks_diff(dl, self.ticks())
            if w <= 0 or not p.poll(w):
                self._err(ETIMEDOUT)
            try:
                r = s.write(mv[got:n])  # pyright: ignore[reportOptionalMemberAccess]
            except OSError:
                self._close()
                raise
            got += r or 0

    def _rd(self, n, start=0):
        # Read exactly n (<= _RBUF) bytes into the preallocated buffer; what is not there yet
        # is waited for in _more.
        try:
            r = self.sock.readinto(self._rb, n)  # pyright: ignore[reportOptionalMemberAccess]
        except OSError:
            self._close()
            raise
        if r != n:
            self._more(self._rb, r, n, start)
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
                b[:r] = d
            self._more(b, r, n, 0)
            d = bytes(b)
        return d

    def _more(self, b, r, n, start):
        # The rest of a read the socket could not give at once (r: what it gave; None:
        # nothing yet, 0: the peer closed). The whole packet has one deadline, `timeout` after
        # its first wait (_pd, cleared at each packet), so a peer that trickles bytes cannot
        # hold a step longer than that. Silence or EOF at a packet boundary (start) is a
        # connection fault; inside a packet it is a truncation.
        got = r or 0
        mv = memoryview(b)
        while r != 0 and got < n:
            now = self.ticks()
            d = self._pd
            if d is None:
                d = self._pd = ticks_add(now, self._t)
            w = ticks_diff(d, now)
            if w <= 0:
                break
            for _ in self._p.ipoll(w):  # pyright: ignore[reportOptionalMemberAccess]
                break
            else:
                break
            try:
                r = self.sock.readinto(mv[got:n])  # pyright: ignore[reportOptionalMemberAccess]
            except OSError:
                self._close()
                raise
            got += r or 0
        if got == n:
            return
        if start and not got:
            self._err(ETIMEDOUT if r is None else ECONNRESET)
        self._err("truncated packet")

    def _drain(self, n):
        # Skip n bytes without allocating (oversize inbound packet).
        while n > 0:
            k = min(n, _RBUF)
            self._rd(k)
            n -= k

    def _u16(self):
        b = self._rd(2)
        return b[0] << 8 | b[1]

    def _pkt(self, t, head, strs, tail=-1):
        # Build a packet in the write buffer (a bigger one only if it does not fit), one write.
        n = len(head) + (tail >= 0)
        for s in strs:
            if len(s) > 65535:
                raise ValueError(len(s))
            n += 2 + len(s)
        b = self._wb
        if n + 5 > len(b):
            b = bytearray(n + 5)
        i = _hdr(b, t, n)
        k = len(head)
        b[i : i + k] = head
        i += k
        for s in strs:
            k = len(s)
            b[i] = k >> 8
            b[i + 1] = k & 255
            b[i + 2 : i + 2 + k] = s
            i += 2 + k
        if tail >= 0:
            b[i] = tail
            i += 1
        self._wr(b, i)

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
            from .topic import bad

            # A topic no client may publish (wildcards, NUL, bad UTF-8) is dropped and
            # counted, and acked like any other so the broker moves on; the link stays.
            if bad(topic):  # pyright: ignore[reportPossiblyUnboundVariable]
                self.bad_topic += 1
            else:
                if (q < 2 or pid not in r2) and self.cb:
                    self.rx_flags = op
                    self.cb(topic, msg)  # pyright: ignore[reportPossiblyUnboundVariable]
                if q == 2:
                    r2.add(pid)
        if q == 2:
            self._ack(0x50, pid)
        elif q:
            self._ack(0x40, pid)

    # --- public operations ---
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
            # A topic object not seen last time: checked once (a broker drops a client that
            # sends a bad one), then the same object passes on identity alone.
            from .topic import check

            check(topic)
            if isinstance(topic, (bytes, str)):  # immutable: cannot change once checked
                self._tok = topic
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
            b[i : i + tl] = topic
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
            self._wrest(b, r, n)  # the send buffer is full: finish it within `timeout`
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

    def _sub(self, t, topic, qos):
        from .topic import check

        topic = check(topic, True)
        self._due()
        pid = self._track(self._newpid(), (t & 0xF0) + 0x10)  # SUBACK / UNSUBACK
        self._pkt(t, bytes((pid >> 8, pid & 255)), [topic], qos)
        while pid in self.inflight:
            self._step()

    def subscribe(self, topic, qos=0):
        if not 0 <= qos <= 2:
            raise ValueError(qos)
        self._sub(0x82, topic, qos)
        if self._rc & 0x80:
            raise MQTTException(self._rc)  # SUBACK failure (MQTT 3.9.3)
        return self._rc

    def unsubscribe(self, topic):
        self._sub(0xA2, topic, -1)

    def wait_msg(self):
        # Block until one packet has been processed (keepalive handled while waiting).
        while True:
            r = self._step()
            if r:
                return r

    def check_msg(self):
        # Process at most one waiting packet; returns its type or None at once.
        return self._step(0)
