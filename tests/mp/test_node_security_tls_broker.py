# The node's TLS end to end against mosquitto's TLS listener (tests/fixtures/broker.py): the
# CA as PEM or DER verifies the broker, and a broker whose certificate the configured CA did
# not sign (an impersonator) is refused, reported, and the node keeps running.
import needs
import json
import time
from binascii import a2b_base64

import harness
import node_fakes as F
import node_world
from node import log, startup

TIMEOUT = 60


def _node(b, base, ca_src, der=False):
    # the CA file sits beside config.json, as on the device's flash
    node_world.tmp()
    with open(ca_src, "rb") as f:
        pem = f.read()
    ca = "ca.der" if der else "ca.pem"
    with open(ca, "wb") as f:
        f.write(a2b_base64(b"".join(pem.split(b"-----")[2].split())) if der else pem)
    m = {"host": "localhost", "port": b["tls_port"], "tls": True, "ca": ca}
    d = node_world.doc(topic=base, mqtt=m)
    with open("config.json", "w") as f:
        json.dump(d, f)
    node, reason, problems = startup.build(lambda name: F.Board(), time)
    assert node is not None and reason is None, (reason, problems)
    drv = F.Sensor(("temperature", "humidity", "pressure"), lambda: {"temperature": 21.5})
    node.sensing.make_driver = lambda scfg: drv
    node.time.mark_synced()
    node.start()
    return node


def _run(node, ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        node.step()
        time.sleep_ms(5)


def _connects_and_publishes_info(b, base, der):
    o = harness.observe(b["port"], base + "/info", qos=1)
    node = _node(b, base, b["ca"], der)
    _run(node, 3000)
    got = harness.messages(o, wait_for=1, timeout=5)
    assert got, node.link.status()
    info = json.loads(got[-1]["payload"])
    assert info["tls"] == "verified", info


def test_node_verifies_the_broker_with_a_pem_ca():
    needs.ssl()
    _connects_and_publishes_info(harness.broker(), "sec14/pem", False)


def test_node_verifies_the_broker_with_a_der_ca():
    needs.ssl()
    _connects_and_publishes_info(harness.broker(), "sec14/der", True)


def test_node_refuses_a_broker_its_ca_did_not_sign_and_keeps_running():
    needs.ssl()
    b = harness.broker()
    base = "sec14/impostor"
    o = harness.observe(b["port"], base + "/#", qos=1)
    node = _node(b, base, b["bad_ca"])
    _run(node, 2000)  # never raises: the loop goes on
    st = node.link.status()
    assert st.get("config_error") and "TLS" in st["last_error"], st
    assert not node.link.online()
    said = [x for x in log.ring if "mqtt: localhost:%d connect failed: TLS" % b["tls_port"] in x]
    assert said, log.ring
    # nothing reached the broker: no info, no readings, no status
    assert harness.messages(o, wait_for=1, timeout=1) == []
