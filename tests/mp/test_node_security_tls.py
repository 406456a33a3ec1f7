# TLS settings as the node uses and reports them: through mqtt.tls (the client's ssl_params),
# and a node without certificate checks (mqtt.tls_insecure) says so in info and at every boot.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json

import needs

from node import log
import node_world
from node_world import World, doc

INFO = "Erdgeschoss/Wohnzimmer/info"
LOG = "Erdgeschoss/Wohnzimmer/log"


def fresh():
    log.ring.clear()
    log._state.clear()  # module state outlives a World in one test process


def _mqtt(**kw):
    m = {"host": "127.0.0.1"}
    m.update(kw)
    return doc(mqtt=m)


def _said(w, text):
    # the console lines still in the ring plus those already published on <base>/log
    lines = list(log.ring) + [x.decode() if isinstance(x, bytes) else x for x in w.mq.topics(LOG)]
    return [x for x in lines if text in x]


def _info(w):
    w.run(300)
    return json.loads(w.mq.topics(INFO)[-1])


def test_insecure_tls_is_reported_in_info_and_on_the_boot_console():
    needs.ssl()  # the node asks ssl for CERT_NONE
    fresh()
    w = World(_mqtt(tls=True, tls_insecure=True))
    assert _info(w)["tls"] == "insecure"
    said = _said(w, "tls: INSECURE: broker certificate not checked")
    assert len(said) == 1, log.ring
    # the context is left to mqtt.tls, told not to check the certificate
    import ssl

    assert w.mq.kw["ssl"] is True and w.mq.kw["ssl_params"] == {"cert_reqs": ssl.CERT_NONE}
    # and again on the next boot (a state said once per boot, not once per device)
    log._state.clear()
    log.ring.clear()
    w.build()
    w.run(300)
    assert _said(w, "tls: INSECURE"), log.ring


def test_tls_with_a_ca_is_verified_by_mqtt_tls_and_not_called_insecure():
    fresh()
    node_world.tmp()  # ca.pem beside config.json, in a scratch folder
    with open("ca.pem", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    w = World(_mqtt(tls=True, ca="ca.pem"), fresh=False)
    assert _info(w)["tls"] == "verified"
    assert w.mq.kw["ssl"] is True and w.mq.kw["ssl_params"] == {"cafile": "ca.pem"}
    assert not _said(w, "INSECURE"), log.ring


def test_plain_mqtt_reports_tls_off():
    fresh()
    w = World()
    assert _info(w)["tls"] == "off"
    assert "ssl" not in w.mq.kw
