"""Self-tests of the mosquitto fixture: every listener really carries a message, the password
and the CA are really checked, and restart() with persistence really keeps a queued message."""

import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from fixtures import rawmqtt
from fixtures.broker import Broker, write_password_file

TESTS = Path(__file__).resolve().parent.parent


class Client:
    """A paho client (callback API 2) that records CONNACK and messages, every wait bounded."""

    def __init__(self, port, client_id="", clean=True, user=None, password=None, ca=None):
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.reason = None
        self.got = []
        self.arrived = threading.Event()
        c = self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        c.reconnect_on_failure = False
        if user is not None:
            c.username_pw_set(user, password)
        if ca is not None:
            c.tls_set(ca_certs=ca)  # verifies the chain and that the cert names 127.0.0.1
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason = reason_code
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.got.append((msg.topic, msg.payload, msg.qos))
        self.arrived.set()

    def subscribe(self, topic, qos=0):
        self.c.subscribe(topic, qos)
        assert self.subscribed.wait(5), "no SUBACK"

    def publish(self, topic, payload, qos=0):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)
        assert info.is_published()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def roundtrip(port, **kw):
    """Subscribe and publish on the same listener; return what the subscriber got."""
    sub = Client(port, **kw)
    pub = Client(port, **kw)
    try:
        assert not sub.reason.is_failure, sub.reason
        sub.subscribe("fx/t", 1)
        pub.publish("fx/t", b"hello", qos=1)
        sub.arrived.wait(5)
        return sub.got
    finally:
        sub.close()
        pub.close()


def test_plain_listener_carries_a_message(broker):
    assert roundtrip(broker.port) == [("fx/t", b"hello", 1)]


def test_auth_listener_carries_a_message_with_the_password(broker):
    info = broker.info()
    assert roundtrip(info["auth_port"], user=info["user"], password=info["password"]) == [
        ("fx/t", b"hello", 1)
    ]


@pytest.mark.parametrize("kw", [{"user": "node", "password": "wrong"}, {}])
def test_auth_listener_refuses_wrong_password_and_anonymous_with_connack_5(broker, kw):
    with socket.create_connection(("127.0.0.1", broker.auth_port), timeout=3) as s:
        s.sendall(rawmqtt.connect("fx-auth", **kw))
        assert rawmqtt.read_packet(s) == (0x20, b"\x00\x05")  # 5: not authorized


def test_plain_listener_accepts_anonymous(broker):
    rawmqtt.open_session(broker.port, "fx-anon").close()


def test_tls_listener_carries_a_message_with_ca_verification(broker):
    assert roundtrip(broker.tls_port, ca=broker.certs["ca"]) == [("fx/t", b"hello", 1)]


def test_tls_server_cert_names_localhost(broker):
    ctx = ssl.create_default_context(cafile=broker.certs["ca"])
    raw = socket.create_connection(("127.0.0.1", broker.tls_port), timeout=3)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(rawmqtt.connect("fx-tls"))
        assert rawmqtt.read_packet(s) == (0x20, b"\x00\x00")


def test_tls_listener_is_refused_by_a_client_trusting_another_ca(broker):
    ctx = ssl.create_default_context(cafile=broker.certs["bad_ca"])
    with (
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=3) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ctx.wrap_socket(raw, server_hostname="localhost")


def test_info_lists_what_a_client_needs(broker):
    info = broker.info()
    assert set(info) == {
        "host",
        "port",
        "auth_port",
        "tls_port",
        "ca",
        "bad_ca",
        "user",
        "password",
    }
    assert len({info["port"], info["auth_port"], info["tls_port"]}) == 3
    assert (info["user"], info["password"]) == ("node", "s3cret")


def queue_while_offline_then_restart(b):
    """A persistent-session QoS 1 subscriber goes away, a message is queued for it, the
    broker restarts; return what the subscriber gets when it comes back."""
    s = rawmqtt.open_session(b.port, "fx-keeper", clean=False)
    s.sendall(rawmqtt.subscribe("keep/#", qos=1))
    assert rawmqtt.read_packet(s)[0] == 0x90  # SUBACK
    s.sendall(rawmqtt.DISCONNECT)
    s.close()
    p = rawmqtt.open_session(b.port, "fx-pub")
    p.sendall(rawmqtt.publish("keep/x", b"queued", qos=1, pid=7))
    assert rawmqtt.read_packet(p) == (0x40, b"\x00\x07")  # PUBACK: the broker has it
    p.close()
    port = b.port
    b.restart()
    assert b.port == port
    s = rawmqtt.open_session(b.port, "fx-keeper", clean=False)
    s.settimeout(1.0)
    try:
        return rawmqtt.read_packet(s)
    except TimeoutError:
        return None
    finally:
        s.close()


def test_restart_with_persistence_keeps_a_queued_qos1_message(private_broker):
    first, body = queue_while_offline_then_restart(private_broker)
    assert first & 0xF0 == 0x30 and (first >> 1) & 3 == 1  # PUBLISH QoS 1
    assert body.startswith(b"\x00\x06keep/x") and body.endswith(b"queued")


def test_restart_without_persistence_loses_it(tmp_path, certs):
    """The control for the test above: proves restart() really restarts the broker."""
    b = Broker(tmp_path, certs, persistence=False).start()
    try:
        assert queue_while_offline_then_restart(b) is None
    finally:
        b.stop()


def test_stop_closes_ports_and_start_reopens_the_same(private_broker):
    port = private_broker.port
    private_broker.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    private_broker.start()
    assert private_broker.port == port
    rawmqtt.open_session(port, "fx-back").close()


def test_password_hash_written_without_mosquitto_passwd_is_accepted(tmp_path, certs):
    b = Broker(tmp_path, certs)
    write_password_file(b.passwd_path, "node", "s3cret", use_tool=False)
    b.start()
    try:
        rawmqtt.open_session(b.auth_port, "fx-hash", user="node", password="s3cret").close()
    finally:
        b.stop()


def test_failing_test_report_carries_the_broker_log(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import sys\nsys.path.insert(0, %r)\npytest_plugins = ['fixtures.plugin']\n" % str(TESTS)
    )
    (tmp_path / "test_fails.py").write_text(
        textwrap.dedent("""
        def test_uses_private_broker(private_broker):
            assert private_broker.port == 0
        """)
    )
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "private broker log" in res.stdout
    assert "Opening ipv4 listen socket" in res.stdout
