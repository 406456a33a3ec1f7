# The node's console log: one line per state change, published to B/log once connected.
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
from node import log
from node_world import World, doc

TIMEOUT = 60
LOG = "Erdgeschoss/Wohnzimmer/log"


def fresh():
    log.ring.clear()
    log._state.clear()  # module state outlives a World in one test process


class Refused:
    """Stands in for the wrapper's public status while the broker refuses us."""

    def __init__(self, mq, err):
        self.mq = mq
        self.err = err

    def status(self):
        return {"last_error": self.err}


def wifi_down(w, code):
    wl = w.board.wlan()
    wl.up = False
    wl.status = lambda what=None: code if what is None else -60


def test_wrong_wifi_name_is_said_once_and_published():
    fresh()
    w = World(doc(wifi=[{"ssid": "Nachbar", "password": "geheim123"}]))
    wifi_down(w, 201)
    w.run(60000)
    lines = w.mq.topics(LOG)
    hits = [x for x in lines if "no AP named 'Nachbar'" in x]
    assert len(hits) == 1, lines  # 60 s of the same failure: one line
    assert any("boot: firmware" in x for x in lines)
    assert all("geheim123" not in x for x in lines)  # the password never shows
    assert all(m[2] is False for m in w.mq.sent if m[0] == LOG)  # not retained


def test_wrong_wifi_password_then_associated():
    fresh()
    w = World(doc(wifi=[{"ssid": "Heim", "password": "falsch99"}]))
    wifi_down(w, 202)
    w.run(1000)
    wl = w.board.wlan()
    wl.up = True
    w.run(1000)
    lines = w.mq.topics(LOG)
    assert any("wrong password for 'Heim'" in x for x in lines), lines
    assert any("associated, ip 10.0.0.5" in x for x in lines), lines


def test_broker_refusal_in_words_kept_in_ring_while_offline():
    fresh()
    w = World()
    w.mq.up = False
    w.mq.connected = False
    w.mq.status = lambda: {
        "last_error": "connection refused: CONNACK 5 (not authorised); check the configuration"
    }
    w.run(30000)
    got = [x for x in log.ring if "not authorised" in x]
    assert len(got) == 1, log.ring
    assert ":1883" in got[0]
    assert len(log.ring) <= log.RING and all(len(x) <= log.WIDTH for x in log.ring)


class Bus:
    def scan(self):
        return [0x23, 0x77]


def test_missing_sensor_names_the_addresses_on_the_bus_once():
    fresh()
    w = World()
    w.board.bus_for = lambda scfg: Bus()
    w.run(100)
    w.drv.fail = OSError(19)
    w.run(60000)
    lines = [x for x in w.mq.topics(LOG) if "sensor bme280" in x]
    assert len(lines) == 1, lines
    assert "I2C bus has 0x23 0x77" in lines[0]
