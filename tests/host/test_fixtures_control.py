"""Self-tests of the harness control server: each command over the real JSON-lines socket,
clean errors for bad requests, per-test teardown, and tests/mp/harness.py driving it from
inside the MicroPython Unix port."""

import json
import os
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from fixtures.control import ControlServer, get_server

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


@pytest.fixture(scope="module")
def server(tmp_path_factory, certs):
    s = ControlServer(tmp_path_factory.mktemp("control"), certs=certs)
    yield s
    s.close()


class Line:
    """A JSON-lines client, like harness.py but in CPython."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")

    def raw(self, data):
        self.sock.sendall(data)
        return json.loads(self.file.readline())

    def ask(self, cmd, **args):
        return self.raw(json.dumps(dict(args, cmd=cmd)).encode() + b"\n")

    def ok(self, cmd, **args):
        reply = self.ask(cmd, **args)
        assert reply["ok"] is True, reply
        return reply["result"]

    def close(self):
        self.file.close()
        self.sock.close()


@pytest.fixture
def line(server, request):
    server.begin_test(request.node.nodeid)
    c = Line(server.port)
    yield c
    c.close()
    server.end_test()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_broker_command_returns_the_shared_broker_info(line, server):
    info = line.ok("broker")
    assert info == server.shared_broker().info()
    assert line.ok("broker", name="shared") == info


def test_observe_publish_messages_round_trip(line):
    port = line.ok("broker")["port"]
    oid = line.ok("observe", port=port, topics=["ctl/#"], qos=1)
    line.ok("publish", port=port, topic="ctl/a", payload="héllo", qos=1, retain=False)
    line.ok("publish", port=port, topic="ctl/b", payload_hex="00ff", qos=0)
    msgs = line.ok("messages", id=oid, wait_for=2, timeout=5)
    assert [(m["topic"], m["payload"], m["payload_hex"], m["qos"]) for m in msgs] == [
        ("ctl/a", "héllo", "68c3a96c6c6f", 1),
        ("ctl/b", "\x00\ufffd", "00ff", 0),
    ]
    assert [m["n"] for m in msgs] == [1, 2] and not any(m["retain"] or m["dup"] for m in msgs)
    assert line.ok("messages", id=oid, field="topic") == ["ctl/a", "ctl/b"]
    bad = line.ask("messages", id=oid, field="nope")
    assert bad["ok"] is False and "field: expected one of" in bad["error"], bad
    assert len(line.ok("messages", id=oid, clear=True)) == 2
    t0 = time.monotonic()
    assert line.ok("messages", id=oid, wait_for=1, timeout=0.3) == []  # cleared; wait bounded
    assert time.monotonic() - t0 < 2


def test_observer_on_the_password_listener(line):
    info = line.ok("broker")
    oid = line.ok("observe", port=info["auth_port"], topics="sec/x", user="node", password="s3cret")
    line.ok(
        "publish",
        port=info["auth_port"],
        topic="sec/x",
        payload="1",
        user="node",
        password="s3cret",
    )
    assert [m["payload"] for m in line.ok("messages", id=oid, wait_for=1)] == ["1"]
    bad = line.ask("publish", port=info["auth_port"], topic="sec/x", payload="1")
    assert bad["ok"] is False


def test_private_broker_stop_start_restart_keeps_queued_message(line):
    info = line.ok("broker", name="mine", persistence=True)
    port = info["port"]
    line.ok("broker_stop", name="mine")
    assert refused(port)
    assert line.ok("broker_start", name="mine")["port"] == port
    assert line.ok("broker_restart", name="mine")["port"] == port
    assert "running" in line.ok("log", kind="broker", name="mine")


def test_proxy_commands(line):
    port = line.ok("broker")["port"]
    p = line.ok("proxy", target_port=port)
    assert set(p) == {"id", "port"}
    line.ok("proxy_drop", id=p["id"], packet="PUBACK", count=1)
    line.ok("proxy_mode", id=p["id"], mode="delay", ms=50, dir="down")
    line.ok("proxy_mode", id=p["id"], mode="pass")
    line.ok("publish", port=p["port"], topic="ctl/p", payload="x", qos=0)  # through the proxy
    stats = line.ok("log", kind="proxy", name=p["id"])
    assert stats["connections"] == 1 and stats["stats"]["up"]["packets"] >= 2


@pytest.mark.parametrize(
    "request_bytes, error",
    [
        (b'{"cmd": "explode"}\n', "unknown command 'explode'"),
        (b"not json\n", "bad JSON"),
        (b'{"name": "x"}\n', 'expected an object with "cmd"'),
        (b'{"cmd": "proxy"}\n', "proxy: bad arguments: missing a required argument"),
        (b'{"cmd": "broker", "colour": "red"}\n', "unexpected keyword argument 'colour'"),
        (b'{"cmd": "broker_stop", "name": "nobody"}\n', "no broker named 'nobody'"),
        (b'{"cmd": "proxy_mode", "id": "p0", "mode": "pass"}\n', "no proxy 'p0'"),
        (b'{"cmd": "messages", "id": "o0"}\n', "no observer 'o0'"),
        (b'{"cmd": "proxy", "target_port": "80"}\n', "target_port: expected 1..65535"),
        (b'{"cmd": "broker", "name": "../x"}\n', "name: expected letters"),
        (b'{"cmd": "broker", "persistence": true}\n', "shared broker has no persistence"),
    ],
)
def test_bad_requests_get_an_error_and_the_server_carries_on(line, request_bytes, error):
    reply = line.raw(request_bytes)
    assert reply["ok"] is False and error in reply["error"], reply
    assert isinstance(line.ok("ping"), float)  # same connection, still served


def test_bad_proxy_mode_is_refused_with_the_reason(line):
    p = line.ok("proxy", target_port=1)
    reply = line.ask("proxy_mode", id=p["id"], mode="explode")
    assert reply["ok"] is False and "mode: expected one of" in reply["error"]


def test_end_test_tears_down_what_the_test_made(server):
    server.begin_test("teardown-check")
    c = Line(server.port)
    try:
        mine = c.ok("broker", name="mine")
        p = c.ok("proxy", target_port=mine["port"])
        shared = c.ok("broker")
        c.ok("observe", port=shared["port"], topics=["x"])
        c.ok("broker_stop", name="shared")
    finally:
        c.close()
    assert [label for label, *_ in server.brokers_used_by("teardown-check")] == [
        "broker 'mine'",
        "broker 'shared'",
    ]
    server.end_test()
    assert refused(mine["port"]) and refused(p["port"])
    assert server.shared_broker().running and not refused(shared["port"])  # started again
    assert server.handle({"cmd": "broker_stop", "name": "mine"})["ok"] is False  # forgotten


def test_close_stops_everything(tmp_path, certs):
    s = ControlServer(tmp_path, certs=certs)
    port = s.shared_broker().port
    c = Line(s.port)
    c.ok("ping")
    s.close()
    assert refused(port) and refused(s.port)
    assert c.file.readline() == b""  # the client connection was closed, not left hanging
    c.close()
    assert not s._thread.is_alive()


def test_control_fixture_is_the_session_singleton(control, request):
    assert control is get_server(request.config)
    assert control.handle({"cmd": "ping"})["ok"]


def run_micropython(server, body):
    """Run body in the Unix port with harness importable; returns its stdout lines as JSON."""
    script = "import harness, json\n" + textwrap.dedent(body)
    env = dict(os.environ, HARNESS_PORT=str(server.port), MICROPYPATH=str(ROOT / "tests" / "mp"))
    res = subprocess.run(
        [str(MICROPYTHON), "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return [json.loads(x) for x in res.stdout.splitlines()]


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="no MicroPython Unix port in .venv")
def test_harness_module_drives_the_server_from_micropython(server):
    server.begin_test("harness-from-micropython")
    try:
        out = run_micropython(
            server,
            """
            b = harness.broker()
            print(json.dumps(b))
            p = harness.proxy(b["port"])
            harness.proxy_mode(p["id"], "delay", ms=10, dir="up")
            harness.proxy_drop(p["id"], "PUBACK")
            o = harness.observe(b["port"], "mp/#", qos=1)
            harness.publish(p["port"], "mp/x", b"\\x01bin")  # QoS 0: the armed drop stays armed
            harness.publish(b["port"], "mp/y", "text", qos=1, retain=True)
            msgs = harness.messages(o, wait_for=2, timeout=5)
            print(json.dumps(sorted([(m["topic"], m["payload_hex"], m["qos"]) for m in msgs])))
            try:
                harness.proxy_mode(p["id"], "explode")
            except RuntimeError as e:
                print(json.dumps(str(e)))
            print(json.dumps(harness.proxy_stats(p["id"])["connections"]))
            print(json.dumps(harness.broker_restart()["port"] == b["port"]))
            print(json.dumps(len(harness.log("broker", "shared")) > 0))
            """,
        )
    finally:
        server.end_test()
    assert out[0]["port"] == server.shared_broker().port
    assert out[1] == [["mp/x", "0162696e", 0], ["mp/y", "74657874", 1]]
    assert "mode: expected one of" in out[2]
    assert out[3:] == [1, True, True]
