"""The node's connection: WiFi (roaming over the configured networks) and the MQTT wrapper.

Owns the wrapper object, its callbacks and the small command inbox between the wrapper's
callback and the loop. Everything else publishes through `publish()` and asks `online()`.

    link = Link(cfg, board, clock, "node-a4cf12345678", log)
    link.start("B/status", [("B/cmd", 1)])
    link.step(now)                      # once per loop step
    link.publish("B/Temp", "21.5")      # False when the wrapper refused it (outbox full)
"""

from node import log as _log

WIFI_TRY_MS = 20000  # give one network this long before trying the next
INBOX = 4  # messages buffered between the MQTT callback and the loop; more are dropped, logged


# ESP32 / simulated network.WLAN status() codes, in words (others are shown as numbers)
_WIFI_TEXT = {
    1001: "connecting",
    200: "beacon timeout",
    201: "no AP named %r",
    202: "wrong password for %r",
    203: "association with %r failed",
    204: "handshake timeout",
}


class Link:
    def __init__(self, cfg, board, clock, client_id, log):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.client_id = client_id
        self.log = log
        self.factory = None  # makes the wrapper (robust's MQTTClient signature); None: mqtt.robust
        self.mqtt = None
        self.inbox = []  # (topic, msg, retained)
        self.connected_once = False
        self.published = 0
        self._just_connected = False
        self._idx = 0
        self._started = None
        self.wifi_up = False
        self._down_since = clock.ticks_ms()  # while down: ticks up to which it is counted
        self._down_total = 0  # ms down, counted step by step (an outage may last weeks)

    def start(self, will_topic, subs):
        """Create the wrapper, subscribe, one bounded connect attempt (the wrapper retries)."""
        m = self.cfg["mqtt"]
        kw = {}
        if m["tls"]:
            # mqtt.tls builds the context at each connect: PEM or DER CA, hostname = host
            kw["ssl"] = True
            kw["ssl_params"] = tls_params(m)
        make = self.factory
        if make is None:
            from mqtt.robust import MQTTClient as make
        self.mqtt = c = make(
            self.client_id,
            m["host"],
            m["port"],
            m["user"],
            m["password"],
            m["keepalive"],
            wlan=self.board.wlan(),
            clock=self.clock,
            connect_timeout=5,
            backoff_min=1000,
            backoff_max=60000,
            clean_session=True,
            spill_bytes=0,  # what the outbox refuses, Delivery keeps in the node's own store
            **kw,
        )
        c.set_callback(self._on_msg)
        # the wrapper declares these as None until set
        c.on_connect = self._on_connect  # pyright: ignore[reportAttributeAccessIssue]
        c.on_disconnect = self._on_disconnect  # pyright: ignore[reportAttributeAccessIssue]
        # MQTT-3.1.2-8: the broker says "offline" for us if we vanish without DISCONNECT.
        c.set_last_will(will_topic, b"offline", True, 1)
        for t, q in subs:
            c.subscribe(t, q)
        self._wifi_connect(self.clock.ticks_ms())
        c.connect()

    def subscribe(self, topic, qos):
        if self.mqtt is not None:
            self.mqtt.subscribe(topic, qos)

    # ---- WiFi ------------------------------------------------------------------------------
    def _wifi_connect(self, now):
        nets = self.cfg["wifi"]
        if not nets:
            return
        w = self.board.wlan()
        net = nets[self._idx % len(nets)]
        try:
            if len(nets) > 1:
                w.disconnect()
            w.connect(net["ssid"], net["password"])
        except Exception as e:  # noqa: BLE001 - a WLAN in a bad state: try again later
            self.log("wifi: %r" % e)
        self._started = now

    def _wifi_step(self, now):
        up = False
        try:
            up = self.board.wlan().isconnected()
        except Exception:  # noqa: BLE001
            pass
        c = self.clock
        self._wifi_say(up)
        if not self.wifi_up:
            self._count_down(now)
        if up != self.wifi_up:
            self.wifi_up = up
            if not up:
                self._down_since = now
                self._started = now  # the next network in WIFI_TRY_MS from the drop
        if not up and self._started is not None and c.ticks_diff(now, self._started) >= WIFI_TRY_MS:
            self._idx += 1
            self._wifi_connect(now)

    def _wifi_say(self, up):
        """Console line for WiFi: formatted only when the status code changes."""
        w = self.board.wlan()
        try:
            code = w.status()
        except Exception:  # noqa: BLE001
            code = None
        key = (up, code)
        if key == getattr(self, "_wifi_key", None):
            return
        self._wifi_key = key
        if up:
            _log.say("wifi", "associated, ip %s" % (self.ip_now(),))
            return
        nets = self.cfg["wifi"]
        ssid = nets[self._idx % len(nets)]["ssid"] if nets else ""
        t = _WIFI_TEXT.get(code) if isinstance(code, int) else None
        if t is None:
            t = "down (status %r)" % (code,)
        elif "%r" in t:
            t = t % ssid
        elif code == 1001:
            t = "connecting to %r" % ssid
        _log.say("wifi", t)

    def ip_now(self):
        try:
            return self.board.wlan().ifconfig()[0]
        except Exception:  # noqa: BLE001
            return None

    def _count_down(self, now):
        d = self.clock.ticks_diff(now, self._down_since)
        if d > 0:
            self._down_total += d
            self._down_since = now

    def wifi_down_ms(self, now):
        if not self.wifi_up:
            self._count_down(now)
        return self._down_total

    def rssi(self):
        try:
            return self.board.wlan().status("rssi") if self.wifi_up else None
        except Exception:  # noqa: BLE001
            return None

    def ip(self):
        try:
            return self.board.wlan().ifconfig()[0] if self.wifi_up else None
        except Exception:  # noqa: BLE001
            return None

    # ---- MQTT --------------------------------------------------------------------------------
    def step(self, now):
        """One bounded step of WiFi and MQTT; True when a connection came up in it."""
        if self.mqtt is None:
            return False
        self._wifi_step(now)
        self.mqtt.step()
        self._mqtt_say()
        if self._just_connected:
            self._just_connected = False
            self.connected_once = True
            return True
        return False

    def _mqtt_say(self):
        """Console line for the broker, from the wrapper's public status."""
        m = self.mqtt
        if m is None:
            return
        if m.is_connected():
            key = "up"
        else:
            try:
                key = m.status().get("last_error")
            except Exception:  # noqa: BLE001
                key = None
        if key == getattr(self, "_mqtt_key", 0):
            return
        self._mqtt_key = key
        c = self.cfg["mqtt"]
        where = "%s:%s" % (c["host"], c["port"])
        if key == "up":
            _log.say("mqtt", "connected to %s" % where)
        elif key is None:
            _log.say("mqtt", "connecting to %s" % where)
        else:
            _log.say("mqtt", "%s %s" % (where, key))

    # callbacks, called inside the wrapper's step: only note things down
    def _on_connect(self, session_present):
        self._just_connected = True

    def _on_disconnect(self, reason):
        self.log("mqtt down: %s" % (reason,))

    def _on_msg(self, topic, msg, *rest):
        # umqtt's callback has no retain flag: the wrapper's rx_flags gives the first byte of
        # the PUBLISH being delivered (bit 0 = RETAIN). A wrapper without it (or a test fake)
        # may pass the flag as a third argument instead.
        retained = bool(rest[0]) if rest else False
        if not rest:
            try:
                f = getattr(self.mqtt, "rx_flags", 0)
                flags = f() if callable(f) else f
                retained = bool(int(flags) & 1)  # pyright: ignore[reportArgumentType]
            except Exception:  # noqa: BLE001 - no flags to read: a live message
                pass
        if isinstance(topic, (bytes, bytearray)):
            topic = bytes(topic).decode()
        if len(self.inbox) < INBOX:
            self.inbox.append((topic, bytes(msg), retained))
        else:
            self.log("command dropped: inbox full")

    def publish(self, topic, payload, retain=False, qos=None):
        """Hand a message to the wrapper; False when it refused it (its outbox is full)."""
        if self.mqtt is None:
            return False
        if qos is None:
            qos = self.cfg["mqtt"]["qos"]
        self.published += 1
        return self.mqtt.publish(topic, payload, retain, qos)

    def withdraw(self, topic, payload):
        """Take back a message the wrapper has not written yet; True if it was still queued."""
        w = getattr(self.mqtt, "withdraw", None)
        return bool(w is not None and w(topic, payload))

    def holds(self, topic, payload):
        """The wrapper still has this message (queued or not yet acknowledged). A wrapper
        without holds() answers as idle() does: held until everything is acknowledged."""
        m = self.mqtt
        if m is None:
            return False
        h = getattr(m, "holds", None)
        return h(topic, payload) if h is not None else not m.idle()

    def online(self):
        return self.mqtt is not None and self.mqtt.is_connected()

    def idle(self):
        """Nothing of ours waits in the wrapper (every QoS 1 message acknowledged)."""
        return self.mqtt is None or self.mqtt.idle()

    def status(self):
        return self.mqtt.status() if self.mqtt is not None else {}

    def drain(self, last, wait_ms):
        """Publish `last` (topic, payload) retained if connected and wait up to wait_ms for
        the wrapper to go idle (a clean stop)."""
        m = self.mqtt
        if m is None or not m.is_connected():
            return
        self.publish(last[0], last[1], True, 1)
        c = self.clock
        t0 = c.ticks_ms()
        while not m.idle() and c.ticks_diff(c.ticks_ms(), t0) < wait_ms:
            m.step()
            c.sleep_ms(5)

    def close(self):
        if self.mqtt is not None:
            self.mqtt.disconnect()


def tls_params(m):
    """The client's ssl_params for the config's mqtt section (tls on).

    With a CA the broker's certificate and name are verified; without one (the validator
    allows that only with tls_insecure) any certificate is accepted, as the user chose."""
    if m.get("ca"):
        return {"cafile": m["ca"]}
    import ssl

    return {"cert_reqs": ssl.CERT_NONE}


def tls_mode(m):
    """TLS as the node runs it: "off", "verified" or "insecure" (no certificate checks)."""
    if not m.get("tls"):
        return "off"
    return "verified" if m.get("ca") else "insecure"
