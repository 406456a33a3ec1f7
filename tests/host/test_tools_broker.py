"""nodectl broker: the mosquitto configuration it writes, run in a real mosquitto (on a free
port, with the generated files), with each node's credentials and rules tried for real."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from tools_util import REPO, run_nodectl

sys.path.insert(0, str(REPO))
from tests.fixtures.broker import MOSQUITTO, free_ports  # noqa: E402

FLEET = {
    "template": {
        "version": 1,
        "board": "esp32-devkitc",
        "topic": "home/{room}",
        "wifi": [{"ssid": "home"}],
        "mqtt": {"host": "pi.lan", "client_id": "{id}"},
        "sensors": [{"type": "bme280", "address": "0x76"}],
    },
    "secrets": {"mqtt": {"user": "{id}", "password": "pw-{id}-1234"}},
    "nodes": [{"id": "kitchen-1", "room": "kitchen"}, {"id": "garden-1", "room": "garden"}],
}


def start_mosquitto(out, tmp_path, port):
    """mosquitto with a main config as Debian ships it (log, persistence) that includes the
    generated nodes.conf, as /etc/mosquitto/conf.d/ would."""
    confd = tmp_path / "conf.d"
    confd.mkdir()
    shutil.copy(out / "nodes.conf", confd / "nodes.conf")
    main = tmp_path / "mosquitto.conf"
    lines = [f"log_dest file {tmp_path / 'mosquitto.log'}", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
    main.write_text("\n".join(lines + [f"include_dir {confd}"]) + "\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(main)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                log = (tmp_path / "mosquitto.log").read_text()
                pytest.fail(f"mosquitto exited: {proc.stderr.read()} {log}")
            time.sleep(0.05)
    proc.kill()
    pytest.fail("mosquitto did not listen")


class Client:
    """A paho client that records CONNACK, SUBACK codes and received messages."""

    def __init__(self, port, user, password, tls_ca=None):
        self.msgs = []
        self.connack = None
        self.subacks = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{port}")
        self.c.username_pw_set(user, password)
        if tls_ca:
            self.c.tls_set(ca_certs=str(tls_ca), cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload.decode()))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.extend(rcs)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        wait(lambda: self.connack is not None)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def generate(tmp_path, *extra, env=None):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps(FLEET))
    out = tmp_path / "out"
    argv = ["broker", "--fleet", fleet, "--out", out, "--etc", out, "--admin-password", "adm1n"]
    r = subprocess.run(
        [sys.executable, str(REPO / "tools" / "nodectl"), *map(str, argv), *map(str, extra)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


@pytest.mark.parametrize("hasher", ["mosquitto_passwd", "python"])
def test_nodes_log_in_and_write_only_their_base_topic_and_discovery(tmp_path, hasher):
    port = free_ports(1)[0]
    env = dict(os.environ)
    if hasher == "python":
        env["PATH"] = str(tmp_path)  # no mosquitto_passwd: nodectl hashes in mosquitto's format
    out, stdout = generate(tmp_path, "--port", port, env=env)
    conf = (out / "nodes.conf").read_text()
    assert f"\nlistener {port}\n" in conf  # no bind address: every interface
    assert "allow_anonymous false" in conf
    assert f"{hasher if hasher == 'mosquitto_passwd' else 'PBKDF2'}" in stdout
    assert f"sudo install -m 0644 {out}/nodes.conf {out}/conf.d/nodes.conf" in stdout
    assert "sudo systemctl restart mosquitto" in stdout
    broker = start_mosquitto(out, tmp_path, port)
    clients = []
    try:
        admin = Client(port, "homeassistant", "adm1n")
        clients.append(admin)
        admin.c.subscribe("#", qos=1)
        assert wait(lambda: admin.subacks)
        node = Client(port, "kitchen-1", "pw-kitchen-1-1234")
        clients.append(node)
        assert node.connack == 0
        for topic in ("home/kitchen/Temp", "homeassistant/sensor/kitchen-1/Temp/config"):
            node.c.publish(topic, "21.5", qos=1).wait_for_publish(5)
        # Another node's topic: mosquitto acknowledges a QoS 1 PUBLISH it denies, but drops it.
        node.c.publish("home/garden/Temp", "99", qos=1).wait_for_publish(5)
        node.c.publish("home/kitchen/done", "1", qos=1).wait_for_publish(5)
        assert wait(lambda: ("home/kitchen/done", "1") in admin.msgs)
        got = [t for t, _ in admin.msgs]
        assert "home/kitchen/Temp" in got
        assert "homeassistant/sensor/kitchen-1/Temp/config" in got
        assert "home/garden/Temp" not in got
        # Nor does it read another node's topics: mosquitto grants the subscription (MQTT 3.1.1)
        # but delivers nothing the ACL does not allow.
        node.c.subscribe("home/#", qos=1)
        assert wait(lambda: node.subacks)
        garden = Client(port, "garden-1", "pw-garden-1-1234")
        clients.append(garden)
        garden.c.publish("home/garden/Temp", "12.0", qos=1).wait_for_publish(5)
        garden.c.publish("home/kitchen/cmd", "{}", qos=1).wait_for_publish(5)
        admin.c.publish("home/kitchen/cmd", '{"cmd":"info"}', qos=1).wait_for_publish(5)
        assert wait(lambda: ("home/kitchen/cmd", '{"cmd":"info"}') in node.msgs)
        assert ("home/garden/Temp", "12.0") in admin.msgs
        assert all(t.startswith("home/kitchen/") for t, _ in node.msgs), node.msgs
        assert ("home/kitchen/cmd", "{}") not in node.msgs  # garden-1 may not write there
        bad = Client(port, "kitchen-1", "wrong-password")
        clients.append(bad)
        assert bad.connack is not None and bad.connack.is_failure
        anon = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon")
        rc = []
        anon.on_connect = lambda c, u, f, r, p: rc.append(r)
        anon.connect("127.0.0.1", port)
        anon.loop_start()
        assert wait(lambda: rc) and rc[0].is_failure
        anon.loop_stop()
    finally:
        for c in clients:
            c.close()
        broker.terminate()
        broker.wait(timeout=5)
    lines = (out / "passwords.txt").read_text().splitlines()
    assert "kitchen-1 pw-kitchen-1-1234 home/kitchen" in lines
    assert oct((out / "passwords.txt").stat().st_mode & 0o777) == "0o600"


def test_tls_listener_with_the_generated_ca(tmp_path):
    port, tls_port = free_ports(2)
    out, stdout = generate(
        tmp_path, "--port", port, "--tls", "--tls-port", tls_port, "--hostname", "127.0.0.1"
    )
    assert (out / "certs" / "ca.crt").is_file() and (out / "certs" / "server.key").is_file()
    assert '"tls": true, "ca": "ca.pem"' in stdout
    broker = start_mosquitto(out, tmp_path, tls_port)
    try:
        c = Client(tls_port, "garden-1", "pw-garden-1-1234", tls_ca=out / "certs" / "ca.crt")
        assert c.connack == 0
        c.close()
    finally:
        broker.terminate()
        broker.wait(timeout=5)


def test_broker_refuses_what_mosquitto_could_not_use(tmp_path):
    r = run_nodectl("broker", "--out", tmp_path)
    assert r.returncode == 1 and "no nodes; give --fleet" in r.stderr
    r = run_nodectl("broker", "--node", "kitchen", "--out", tmp_path)
    assert r.returncode == 1 and "expected USER:BASE" in r.stderr
    r = run_nodectl("broker", "--node", "a b:x/y", "--out", tmp_path)
    assert r.returncode == 1 and "expected 1..64 of [A-Za-z0-9_.-]" in r.stderr
    r = run_nodectl("broker", "--node", "a:x/#", "--out", tmp_path)
    assert r.returncode == 1 and "must be a plain topic" in r.stderr
    r = run_nodectl("broker", "--node", "a:x", "--node", "a:y", "--out", tmp_path)
    assert r.returncode == 1 and "appears twice" in r.stderr
