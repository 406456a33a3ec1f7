"""The client's cold paths: opening the link (socket, TLS, CONNECT), reading the CONNACK,
SUBSCRIBE/UNSUBSCRIBE and the last will. Part of mqtt.client, kept in its own file because a
connection uses them for moments only: the client imports this module for one call and drops it
after, so its code is off the heap while messages flow.

    c.connect()             # mqtt.client calls begin() and finish() here, then drops the module
"""

import select
from errno import ECONNRESET, ETIMEDOUT
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

_STREAM = const(1)  # socket.SOCK_STREAM on Linux and lwIP alike
_RBUF = const(64)


def _b(s):
    return s.encode() if isinstance(s, str) else s


def _body(head, strs, tail=-1):
    # Variable header, then each string with its 2-byte length (MQTT 1.5.3), then a tail byte.
    b = bytearray(head)
    for s in strs:
        n = len(s)
        if n > 65535:
            raise ValueError(n)
        b.append(n >> 8)
        b.append(n & 255)
        b.extend(s)
    if tail >= 0:
        b.append(tail)
    return b


def __init__(c, a, kw):
    _new(c, *a, **kw)


def _new(c, client_id, server, port=0, user=None, password=None, keepalive=60, ssl=None,
         ssl_params={}, **kw):  # fmt: skip
    if not port:
        port = 8883 if ssl else 1883
    if password is not None and user is None:
        raise ValueError(password)  # MQTT-3.1.2-22: a password needs a user name
    c.client_id = _b(client_id)
    c.server = server
    c.port = port
    c.user = user
    c.pswd = password
    c.keepalive = keepalive
    c.ssl = ssl
    c.ssl_params = ssl_params
    c.cb = c._lw = c.sock = c.addr = c._tok = c._pd = c._p = None
    c._tks = []  # the last topic names that passed check_topic, newest first (at most 8)
    c._rok = set()  # inbound topics found good lately (at most 8)
    c.pid = c.stray = c.dropped = c.rx_flags = c._dl = c._t = 0
    c.bad_topic = c.refused = 0  # inbound PUBLISH dropped: bad topic; QoS 2 refused
    c.inflight = {}
    c._rx2 = set()  # inbound QoS 2 ids between PUBREC and PUBREL (exactly once)
    g = kw.get
    c.timeout = g("timeout", 10)
    c.max_inflight = g("max_inflight", 1)
    c.max_packet = g("max_packet", 8192)
    c.ticks = g("ticks", ticks_ms)
    c.sock_factory = g("sock_factory")
    c.on_ack = g("on_ack")
    c.on_drop = g("on_drop")
    # Outgoing packets and acks (at least 130 bytes: every PUBLISH with a one-byte
    # Remaining Length fits); inbound fixed headers, ids and drained bytes.
    c._wb = bytearray(max(g("wbuf", 256), 130))
    c._rb = bytearray(_RBUF)


def _wr(c, b, r, n):
    # The socket took only part of a packet (its send buffer is full): write the rest as it
    # drains, the whole packet within `timeout`.
    s = c.sock
    p = select.poll()
    p.register(s, 4)  # POLLOUT
    mv = memoryview(b)
    got = r or 0
    dl = ticks_add(c.ticks(), c._t)
    while got < n:
        w = ticks_diff(dl, c.ticks())
        if w <= 0 or not p.poll(w):
            c._err(ETIMEDOUT)
        try:
            r = s.write(mv[got:n])
        except OSError:
            c._close()
            raise
        got += r or 0


def _rd(c, b, r, n, start):
    # The rest of a read the socket could not give at once (r: what it gave; None: nothing
    # yet, 0: the peer closed). The whole packet has one deadline, `timeout` after its first
    # wait (_pd, cleared at each packet), so a peer that trickles bytes cannot hold a step
    # longer than that. Silence or EOF at a packet boundary (start) is a connection fault;
    # inside a packet it is a truncation.
    got = r or 0
    mv = memoryview(b)
    while r != 0 and got < n:
        now = c.ticks()
        d = c._pd
        if d is None:
            d = c._pd = ticks_add(now, c._t)
        w = ticks_diff(d, now)
        if w <= 0:
            break
        for _ in c._p.ipoll(w):
            break
        else:
            break
        try:
            r = c.sock.readinto(mv[got:n])
        except OSError:
            c._close()
            raise
        got += r or 0
    if got == n:
        return
    if start and not got:
        c._err(ETIMEDOUT if r is None else ECONNRESET)
    c._err("truncated packet")


def set_last_will(c, topic, msg, retain, qos):
    if not 0 <= qos <= 2:
        raise ValueError(qos)
    c.check_topic(topic)
    c._lw = (_b(topic), _b(msg), qos, retain)


def begin_connect(c, clean_session, timeout):
    c._close()
    t = c.timeout if timeout is None else timeout
    f = c.sock_factory
    if f:
        s = f(c, t)
    else:
        import socket

        a = c.addr
        if not a:
            a = c.addr = socket.getaddrinfo(c.server, c.port, 0, _STREAM)[0]
        s = socket.socket(a[0], _STREAM, a[2])
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: same numbers on Linux and lwIP
        except OSError:
            pass
    c._raw = s
    try:
        s.settimeout(t)  # bounds the TCP connect, the TLS handshake and writing CONNECT
        if not f:
            s.connect(a[-1])  # pyright: ignore[reportPossiblyUnboundVariable]
        if c.ssl:
            from .tls import wrap  # only TLS nodes load ssl and the TLS code

            s = wrap(c, s)
    except Exception as e:
        s.close()
        if isinstance(e, ValueError):  # from wrap: TLS verification or configuration
            c._err(str(e))
        raise
    c.sock = s
    c._t = int(t * 1000)
    p = c._p = select.poll()
    p.register(s, 1)  # POLLIN
    c.inflight.clear()
    c._pend = False  # a PINGREQ is unanswered
    c._kt = c._ack_t = c._dl = c.ticks()
    c._clean = clean_session
    # CONNECT, MQTT 3.1.2: protocol name, level 4, flags, keepalive; payload 3.1.3.
    fl = 2 if clean_session else 0
    p = [c.client_id]
    w = c._lw
    if w:
        fl |= 4 | w[2] << 3 | (w[3] and 0x20)
        p += w[:2]
    if c.user is not None:
        fl |= 0x80
        p.append(_b(c.user))
        if c.pswd is not None:
            fl |= 0x40
            p.append(_b(c.pswd))
    k = c.keepalive
    c._put(0x10, _body(bytes((0, 4, 77, 81, 84, 84, 4, fl, k >> 8, k & 255)), p))
    # From here on the link is non-blocking: every wait is a poll bounded by a deadline for
    # the whole packet, so a peer trickling bytes cannot stretch one read.
    c._raw.settimeout(0)


def finish_connect(c):
    # MQTT-3.2.0-1: the first packet from the server is a CONNACK (always 4 bytes). Returns
    # the session-present flag, or -code for a refusal (1..5, MQTT 3.2.2.3).
    c._pd = None
    b = c._rd(4, 1)
    sp = b[2]
    # Flags bits 7-1 are reserved; a session present after a clean start is a lie
    # (MQTT-3.2.2-1); a refused CONNACK has no session (MQTT-3.2.2-4).
    if b[0] != 0x20 or b[1] != 2 or sp > 1 or sp and (c._clean or b[3]):
        c._err("bad CONNACK")
    if b[3]:
        c._close()
        return -b[3]
    if not sp:
        c._rx2.clear()  # no session: the broker forgot its QoS 2 state too
    c._t = int(c.timeout * 1000)
    c._kt = c.ticks()
    return sp


def subscribe(c, t, topic, qos):
    # SUBSCRIBE (t 0x82, qos >= 0) or UNSUBSCRIBE (0xA2, qos -1); waits for its ack (bounded
    # by the client's deadlines) and returns the SUBACK code.
    c.check_topic(topic, True)
    topic = _b(topic)
    c._due()
    pid = c._track(c._newpid(), (t & 0xF0) + 0x10)  # SUBACK / UNSUBACK
    c._put(t, _body(bytes((pid >> 8, pid & 255)), [topic], qos))
    while pid in c.inflight:
        c._step()
    return c._rc if t == 0x82 else 0
