"""The robust wrapper's connect path: resolve, open the TCP connection without blocking, await
the CONNACK across steps, then resume or rebuild the session (in-flight resent with DUP=1,
subscriptions replayed), or count the failure and schedule the next attempt. Part of
mqtt.robust, kept in its own file because only a wrapper that is connecting needs it: the
wrapper imports it lazily, so its code is off the heap while the connection is up.

    from mqtt.rconnect import attempt
    attempt(wrapper, now)        # what MQTTClient.step() does when the backoff says so
"""

from micropython import const

from mqtt.client import MQTTException
from mqtt.state import BACKOFF, CONNECTED, CONNECTING

_PID = const(4)
_STAGE = const(5)
_DNS_FAIL_LIMIT = const(3)  # this many failed attempts in a row: resolve the host name again
_IN_PROGRESS = (115, 119, 11)  # EINPROGRESS on Linux and lwIP, EAGAIN

_CONNACK_TEXT = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


def resolve(w):
    c = w._c
    if not w._own_sock:
        return
    if c.addr is not None and not (w._fails and w._fails % _DNS_FAIL_LIMIT == 0):
        return
    # First connect, or repeated failures: resolve again, but keep the last good address
    # if the name server is unreachable too.
    gai = w._resolver
    if gai is None:
        import socket

        gai = socket.getaddrinfo
    try:
        c.addr = gai(c.server, c.port, 0, 1)[0]  # SOCK_STREAM is 1 on lwIP and Linux
    except OSError:
        if c.addr is None:
            raise


def attempt(w, now):
    w.attempts += 1
    w._phase_clean = not w._booted and w._clean_at_start and not w._clean
    try:
        resolve(w)
        start(w, now)
    except (OSError, MQTTException) as e:
        w._abort()
        failed(w, e)
        return
    w._state = CONNECTING
    await_connack(w, now)


def start(w, now):
    # Start a connection. With our own sockets the TCP connect does not block: it is
    # started here and finished across steps (await_connack); with an injected socket
    # factory the client opens the link itself.
    w._try_at = now
    w._poll = None
    if not w._own_sock:
        w._c.begin_connect(w._phase_clean or w._clean, w._ct_ms / 1000)
        return
    import socket

    a = w._c.addr
    if a is None:
        raise OSError(-2)  # not resolved (cannot happen after resolve)
    s = socket.socket(a[0], socket.SOCK_STREAM, a[2])
    w._tcp = s
    s.setblocking(False)
    try:
        s.connect(a[-1])
    except OSError as e:
        if e.args[0] not in _IN_PROGRESS:
            raise


def tcp_done(w, ev):
    # The non-blocking TCP connect finished: hand the socket to the client, which sends
    # CONNECT (and makes the TLS handshake, bounded by connect_timeout).
    s = w._tcp
    if s is None or ev & 0x18:  # POLLHUP | POLLERR: refused or unreachable
        raise OSError(111)  # ECONNREFUSED
    s.setblocking(True)
    try:
        s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: same numbers on lwIP and Linux
    except OSError:
        pass
    c = w._c
    c.sock_factory = lambda client, timeout: s
    try:
        c.begin_connect(w._phase_clean or w._clean, w._ct_ms / 1000)
    finally:
        c.sock_factory = None
        w._tcp = None


def await_connack(w, now):
    c = w._c
    try:
        d = w._clock.ticks_diff(now, w._try_at)
        if d >= w._ct_ms or d < 0:
            raise OSError(110)  # ETIMEDOUT: no TCP connection, or no CONNACK
        p = w._poll
        if p is None:
            import select

            p = w._poll = select.poll()
            if w._tcp is not None:
                p.register(w._tcp, select.POLLOUT)
            else:
                p.register(c.sock, select.POLLIN)
        ev = p.poll(0)
        if not ev:
            return
        w._poll = None
        if w._tcp is not None:
            tcp_done(w, ev[0][1])
            return
        present = c.finish_connect()
        if w._phase_clean:
            # Power-up: the clean connect discarded any old session (MQTT-3.1.2-6); now
            # open the persistent one we keep from here on.
            w._phase_clean = False
            c.disconnect()
            w._booted = True
            start(w, w._clock.ticks_ms())
            return
    except (OSError, MQTTException) as e:
        w._poll = None
        w._abort()
        failed(w, e)
        return
    connected(w, bool(present))


def connected(w, present):
    w._present = present
    w._state = CONNECTED
    w._up_at = w._clock.ticks_ms()
    w._healthy = False
    w._fails = 0
    w.config_error = False
    if w.connects:
        w.reconnects += 1
    w.connects += 1
    w._booted = True
    try:
        if present:
            resend_inflight(w)
            for t in w._unsubs:
                w._c.unsubscribe(t)
            w._unsubs = []
            for t in w._sub_order:  # made while offline: not in the broker's session
                if not w._subs[t][1] and t not in w._rejected:
                    w._sub_one(t)
        else:
            # A new session: in-flight messages go again as new publishes, ahead of the
            # rest, and every subscription is made again.
            w.outbox.requeue(w.inflight.take_all())
            w._unsubs = []
            for t in w._sub_order:
                w._subs[t][1] = False
                if t not in w._rejected:
                    w._sub_one(t)
    except (OSError, MQTTException) as e:
        w._drop(e)
        return
    w.log(True, "connected, session present %d" % present)
    if w.on_connect:
        w._user(w.on_connect, present)
    if w._state == CONNECTED:
        w._flush()


def resend_inflight(w):
    # MQTT-4.4.0-1: on a resumed session unacknowledged PUBLISH packets go again with
    # DUP=1 (MQTT-3.3.1-1) and their original ids; PUBRELs for QoS 2 ones already PUBREC'd.
    c = w._c
    for e in w.inflight.entries():
        if e[_STAGE]:
            c.pubrel(e[_PID])
        else:
            c.publish(e[0], e[1], e[2], e[3], pid=e[_PID], dup=True)


def failed(w, e):
    w._fails += 1
    w._state = BACKOFF
    code = e.code if isinstance(e, MQTTException) else None
    if code in (1, 2, 4, 5) or isinstance(code, str) and code.startswith("TLS"):
        # Configuration errors (refused credentials or id, a certificate that does not
        # verify): retrying fast cannot help; report clearly and go slow.
        w.config_error = True
        if isinstance(code, str):
            w.last_error = "connect failed: %s; check the configuration" % code
        else:
            w.last_error = "connection refused: CONNACK %d (%s); check the configuration" % (
                code,
                _CONNACK_TEXT[code],
            )
        delay = w.backoff.slowest()
    else:
        if code == 3:
            w.last_error = "connection refused: CONNACK 3 (server unavailable)"
        elif isinstance(e, OSError) and e.args and e.args[0] == 110:
            w.last_error = "connect failed: timed out"
        else:
            w.last_error = "connect failed: %r" % (e,)
        delay = w.backoff.next()
    w._next_at = w._clock.ticks_add(w._clock.ticks_ms(), delay)
    w.log(True, w.last_error)
