# The node built on fakes (node_fakes): a World holds the clock, board, driver and MQTT fake,
# and rebuilds the node from the same files (a reboot). Shared by the test_node_app*.py files.
import json
import os

import node_fakes as F
from tmpdir import fresh_dir
from node import startup


def tmp():
    d = fresh_dir("node_app")
    os.chdir(d)
    return d


def doc(**kw):
    d = {
        "version": 1,
        "board": "sim",
        "topic": "Erdgeschoss/Wohnzimmer",
        "interval": 10,
        "wifi": [{"ssid": "simnet", "password": "secret123"}],
        "mqtt": {"host": "127.0.0.1"},
        "discovery": False,
        "diag": {"interval": 600},
        "sensors": [
            {"type": "bme280", "address": "0x76", "quantities": {"humidity": {"decimals": 1}}}
        ],
        "time": {"ntp": None},
    }
    d.update(kw)
    return d


class MQTT(F.MQTT):
    """The fake wrapper plus withdraw() (robust's: take back a message not yet written) and a
    stall switch (connected, but nothing goes out: a full TCP window, a slow broker)."""

    stall = False

    def withdraw(self, t, m):
        for i in range(len(self.queue)):
            e = self.queue[i]
            if e[0] == t and e[1] == m:
                self.queue.pop(i)
                return True
        return False

    def step(self):
        if self.stall and self.connected and self.up:
            return
        F.MQTT.step(self)


class World:
    def __init__(
        self, d=None, sleeper=None, values=None, fresh=True, broker_up=True, start_ms=0, synced=True
    ):
        if fresh:
            tmp()
        d = d or doc()
        with open("config.json", "w") as f:
            json.dump(d, f)
        self.clock = F.Clock(start_ms)  # start_ms near 2^30: the ticks wrap early in a test
        self.synced = synced  # False: the node's Timekeeper syncs by itself (an ntptime fake)
        self.board = F.Board()
        self.values = values or {"temperature": 21.53, "humidity": 45.26, "pressure": 1013.27}
        self.drv = F.Sensor(("temperature", "humidity", "pressure"), lambda: dict(self.values))
        self.mq = None
        self.broker_up = broker_up  # False: the broker is down from the first connect
        self.node = self.build()

    def build(self):
        w = self

        def factory(*a, **kw):
            w.mq = MQTT(*a, **kw)
            w.mq.up = w.broker_up
            return w.mq

        node, reason, problems = startup.build(lambda name: self.board, self.clock)
        node.link.factory = factory
        node.sensing.make_driver = lambda scfg: self.drv
        if self.synced:
            node.time.mark_synced()  # a synced clock: timestamps are the fake epoch
        self.node = node
        node.start()
        return node

    def run(self, ms, step=10):
        end = self.clock.ms + ms
        while self.clock.ms < end:
            self.node.step()
            self.clock.advance(step)
