"""MicroPython side of the test harness: steer brokers, fault proxies and observers that
pytest runs on the host (tests/fixtures/control.py), over JSON lines on the loopback port in
HARNESS_PORT. One connection per process, reused; every wait bounded. Runs in the Unix port
with only socket, json, os and time.

    import harness
    b = harness.broker()                       # the session's shared broker
    p = harness.proxy(b["port"])               # connect the client under test to p["port"]
    harness.proxy_mode(p["id"], "blackhole", dir="up")
    o = harness.observe(b["port"], ["a/#"], qos=1)
    msgs = harness.messages(o, wait_for=1, timeout=5)

A request the server refuses raises RuntimeError with the server's error text.
"""

import json
import os
import socket

_TIMEOUT = 30  # s: the slowest command (starting a broker, at most 10 s) fits well inside
_sock = None


def _connect():
    global _sock
    if _sock is None:
        port = os.getenv("HARNESS_PORT")
        if not port:
            raise RuntimeError("harness: HARNESS_PORT is not set (run the test under pytest)")
        s = socket.socket()
        s.settimeout(_TIMEOUT)
        try:
            s.connect(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
        except OSError:
            s.close()
            raise
        _sock = s
    return _sock


def close():
    """Drop the connection (the next call opens a new one)."""
    global _sock
    if _sock is not None:
        _sock.close()
        _sock = None


def call(cmd, **args):
    """Send one command and return its result; RuntimeError if the server says no.
    A long wait the command asks for (``timeout``) extends the socket timeout."""
    args["cmd"] = cmd
    s = _connect()
    s.settimeout(_TIMEOUT + (args.get("timeout") or 0))
    try:
        s.sendall(json.dumps(args).encode() + b"\n")
        line = s.readline()
    except OSError:
        close()  # a reply arriving late would be read as the next command's
        raise
    if not line:
        close()
        raise RuntimeError("harness: control server closed the connection")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error") or "harness: bad reply %r" % line)
    return reply.get("result")


def broker(name="shared", persistence=False):
    """Start (if needed) the named broker; returns {"host","port","auth_port","tls_port",
    "ca","bad_ca","user","password"}. Brokers other than "shared" end with the test."""
    return call("broker", name=name, persistence=persistence)


def broker_stop(name="shared"):
    call("broker_stop", name=name)


def broker_start(name="shared"):
    return call("broker_start", name=name)


def broker_restart(name="shared"):
    """Stop and start on the same ports (sessions survive if it has persistence)."""
    return call("broker_restart", name=name)


def proxy(target_port, target_host="127.0.0.1"):
    """A fault proxy in front of target_port; returns {"id","port"}."""
    return call("proxy", target_port=target_port, target_host=target_host)


def proxy_mode(pid, mode, **kw):
    """mode: pass | blackhole (dir) | delay (dir, ms) | cut (how) | refuse (how);
    dir: up | down | both; how: fin | rst."""
    call("proxy_mode", id=pid, mode=mode, **kw)


def proxy_drop(pid, packet, count=1, dir=None):
    """Drop the next count MQTT packets of that type ("PUBACK", "PINGRESP", ...)."""
    call("proxy_drop", id=pid, packet=packet, count=count, dir=dir)


def proxy_stats(pid):
    """{"stats": {"up": {...}, "down": {...}}, "connections", "open"}."""
    return call("log", kind="proxy", name=pid)


def observe(port, topics, qos=0, user=None, password=None):
    """Subscribe a host-side paho client; returns its id for messages()."""
    if isinstance(topics, str):
        topics = [topics]
    return call("observe", port=port, topics=topics, qos=qos, user=user, password=password)


def messages(oid, wait_for=0, timeout=5, clear=False, field=None):
    """What the observer got: [{"topic","payload","payload_hex","qos","retain","dup","n"}],
    once there are wait_for of them or timeout s have passed. With field="payload" (or any
    other key), just that field of each message: much less heap for long lists."""
    if field is None:
        return call("messages", id=oid, wait_for=wait_for, timeout=timeout, clear=clear)
    return call("messages", id=oid, wait_for=wait_for, timeout=timeout, clear=clear, field=field)


def publish(port, topic, payload, qos=0, retain=False, user=None, password=None):
    """Publish from the host; returns once the broker has it. payload: str or bytes."""
    if isinstance(payload, str):
        return call("publish", port=port, topic=topic, payload=payload, qos=qos,
                    retain=retain, user=user, password=password)  # fmt: skip
    hexed = "".join("%02x" % b for b in payload)
    return call("publish", port=port, topic=topic, payload_hex=hexed, qos=qos,
                retain=retain, user=user, password=password)  # fmt: skip


def log(kind="broker", name="shared"):
    """The tail of a broker's log (kind "broker"), or a proxy's counters (kind "proxy")."""
    return call("log", kind=kind, name=name)
