# umqtt.simple's two examples (example_pub.py, example_sub.py), rewritten in our words with
# the same calls in the same order; only the import line differs from a umqtt program. The
# broker is the harness's, so the port is passed (umqtt's examples assume 1883).
import time
import harness
from mqtt.client import MQTTClient  # was: from umqtt.simple import MQTTClient


class _Done(Exception):
    pass


def pub_example(server, port):
    c = MQTTClient("umqtt_client", server, port)
    c.connect()
    c.publish(b"foo_topic", b"hello")
    c.disconnect()


def sub_example(server, port, blocking, limit):
    got = []

    def sub_cb(topic, msg):
        print((topic, msg))
        got.append((topic, msg))
        if len(got) >= limit:
            raise _Done  # the real example loops forever; a test has to stop

    c = MQTTClient("umqtt_client_sub", server, port)
    c.set_callback(sub_cb)
    c.connect()
    c.subscribe(b"foo_topic")
    harness.publish(port, "foo_topic", "hello")  # mosquitto_pub -t foo_topic -m hello
    t0 = time.ticks_ms()
    try:
        while time.ticks_diff(time.ticks_ms(), t0) < 5000:
            if blocking:
                c.wait_msg()  # blocking wait for message
            else:
                c.check_msg()  # non-blocking; the example sleeps 1 s here
                time.sleep_ms(10)
    except _Done:
        pass
    c.disconnect()
    return got


def test_example_pub_delivers_hello():
    b = harness.broker()
    o = harness.observe(b["port"], ["foo_topic"])
    pub_example(b["host"], b["port"])
    m = harness.messages(o, wait_for=1, timeout=5)
    assert [(x["topic"], x["payload"]) for x in m] == [("foo_topic", "hello")]


def test_example_sub_with_wait_msg():
    b = harness.broker()
    assert sub_example(b["host"], b["port"], True, 1) == [(b"foo_topic", b"hello")]


def test_example_sub_with_check_msg():
    b = harness.broker()
    assert sub_example(b["host"], b["port"], False, 1) == [(b"foo_topic", b"hello")]
