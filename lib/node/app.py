"""The node: a non-blocking loop serving sensors, MQTT and timers in turn.

`main()` is what firmware/main.py calls: it loads the config (falling back to last-good),
decides on safe mode, builds a `Node` and runs it forever. Every step of the loop is bounded:
a sensor is started, then read `conversion_ms` later on another step; the MQTT wrapper does one
step per call; the watchdog is fed only while steps complete.

Topics under the base topic B (e.g. Erdgeschoss/Wohnzimmer):
  B/<Sub>             one plain value per quantity ("21.5"), never nan or a stale number
  B/json              optional document with all current values and the measurement time
  B/status            online / offline / sleeping (retained; the will says offline)
  B/status/<sensor>   online / offline per sensor (retained)
  B/backlog           readings taken while offline, replayed oldest first with their time
  B/cmd, B/result     commands and their results;  B/cmd/awake  retained stay-awake switch
  B/diag              periodic diagnostics;  B/info  retained, once per boot

    from node import app
    app.main()
"""

import json
import sys
import time

from node import sensing
from node.payload import Topics, record

WDT_MS = 60000  # watchdog timeout; fed after every completed loop step
WIFI_TRY_MS = 20000  # give one network this long before trying the next
REPLAY_BATCH = 10  # backlog records handed to MQTT per batch
INBOX = 4  # commands buffered between MQTT callback and loop
STEP_FAILS_LIMIT = 20  # this many failed steps in a row: stop feeding the watchdog

try:
    from node.version import VERSION as FW  # pyright: ignore[reportMissingImports] - made by build
except ImportError:
    FW = "dev"


class Node:
    def __init__(
        self,
        cfg,
        board,
        clock=time,
        safe_reason=None,
        source="config",
        problems=(),
        guard=None,
        trial=None,
        mqtt_factory=None,
        sleeper=None,
        t_reset=None,
    ):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.safe_reason = safe_reason
        self.cfg_source = source
        self.cfg_problems = list(problems)
        self.guard = guard
        self.trial = trial  # dict when running a set_config that is not confirmed yet
        self.fw = FW
        self.topics = Topics(cfg["topic"])
        self.t_boot = clock.ticks_ms()
        self.t_reset = self.t_boot if t_reset is None else t_reset
        self.mac = board.mac_hex()
        self.client_id = cfg["mqtt"].get("client_id") or ("node-" + self.mac)
        self.reset_cause = board.reset_cause()
        self.boot_count = guard.boots if guard is not None else 0
        self.cfg_id = "%08x" % _crc(json.dumps(cfg))
        self.sensors = []
        if not safe_reason:
            for s in cfg["sensors"]:
                self.sensors.append(sensing.SensorRT(s, self.t_boot))
        from node.timekeep import Timekeeper

        t = cfg["time"]
        self.time = Timekeeper(t["ntp"], t["retries"], t["resync"], clock)
        self.spool = None
        if not safe_reason:
            from node.spool import Spool

            sp = cfg["spool"]
            self.spool = Spool(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"])
        self.sleep_cfg = cfg["deep_sleep"]
        self.sleeper = (
            sleeper if sleeper is not None else (self.sleep_cfg["enabled"] and not safe_reason)
        )
        self.rtc = None
        if self.sleeper:
            from node.sleep import RtcStore

            self.rtc = RtcStore(board)
            if self.rtc.meta.get("synced") and board.woke_from_deepsleep():
                self.time.mark_synced()  # the RTC kept the time through deep sleep
        self.announcer = None
        self.mqtt = None
        self._mqtt_factory = mqtt_factory
        self._inbox = []
        self._connected_once = False
        self._just_connected = False
        self._info_sent = False
        self._replay_out = 0
        self._diag_due = self.t_boot
        self._good_marked = False
        self._step_fails = 0
        self.loop_max_ms = 0
        self._shutdown = None  # (kind, deadline, ms) once a reboot or sleep is under way
        self._wifi_idx = 0
        self._wifi_started = None
        self._wifi_up = False
        self._wifi_down_since = self.t_boot
        self._wifi_down_total = 0
        self._awake = False  # a retained stay-awake switch is on
        self._awake_seen_at = None
        self.published = 0
        self.started = False
        self._sleep_reads_done = False
        self._wake = []  # sleeper: readings of this wake not yet published
        self._json_due = False
        self._json_t = None  # measurement time of the readings in the pending JSON document

    # ---- set-up ----------------------------------------------------------------------------
    def start(self):
        if self.sleeper:
            # Read sensors before WiFi: the radio heats the board and costs power.
            return
        self._start_network()

    def _start_network(self):
        if self.started:
            return
        self.started = True
        m = self.cfg["mqtt"]
        kw = {}
        if m["tls"]:
            kw["ssl"] = _ssl_context(m)
        make = self._mqtt_factory
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
            **kw,
        )
        c.set_callback(self._on_msg)
        # the wrapper declares these as None until set
        c.on_connect = self._on_connect  # pyright: ignore[reportAttributeAccessIssue]
        c.on_disconnect = self._on_disconnect  # pyright: ignore[reportAttributeAccessIssue]
        # MQTT-3.1.2-8: the broker says "offline" for us if we vanish without DISCONNECT.
        c.set_last_will(self.topics.status, b"offline", True, 1)
        if self.cfg["commands"]["enabled"]:
            c.subscribe(self.topics.cmd, 1)
        if self.sleeper:
            c.subscribe(self.topics.awake, 1)
        d = self.cfg["discovery"]
        if d["enabled"] and not self.safe_reason and self.sensors:
            from node.discovery import Announcer

            self.announcer = Announcer(self.cfg, self.topics, self.mac, self.fw)
            c.subscribe(self.announcer.status_topic, 0)
        self._wifi_connect(self.clock.ticks_ms())
        c.connect()  # one bounded attempt; the wrapper keeps trying from step()

    # ---- WiFi ------------------------------------------------------------------------------
    def _wifi_connect(self, now):
        nets = self.cfg["wifi"]
        if not nets:
            return
        w = self.board.wlan()
        net = nets[self._wifi_idx % len(nets)]
        try:
            if len(nets) > 1:
                w.disconnect()
            w.connect(net["ssid"], net["password"])
        except Exception as e:  # noqa: BLE001 - a WLAN in a bad state: try again later
            self._log("wifi: %r" % e)
        self._wifi_started = now

    def _wifi_step(self, now):
        w = self.board.wlan()
        up = False
        try:
            up = w.isconnected()
        except Exception:  # noqa: BLE001
            pass
        c = self.clock
        if up != self._wifi_up:
            self._wifi_up = up
            if up:
                self._wifi_down_total += c.ticks_diff(now, self._wifi_down_since)
            else:
                self._wifi_down_since = now
        if (
            not up
            and self._wifi_started is not None
            and c.ticks_diff(now, self._wifi_started) >= WIFI_TRY_MS
        ):
            self._wifi_idx += 1
            self._wifi_connect(now)

    def wifi_down_ms(self, now):
        t = self._wifi_down_total
        if not self._wifi_up:
            t += self.clock.ticks_diff(now, self._wifi_down_since)
        return t

    def rssi(self):
        try:
            return self.board.wlan().status("rssi") if self._wifi_up else None
        except Exception:  # noqa: BLE001
            return None

    def ip(self):
        try:
            return self.board.wlan().ifconfig()[0] if self._wifi_up else None
        except Exception:  # noqa: BLE001
            return None

    # ---- MQTT callbacks (called inside the wrapper's step: only note things down) -----------
    def _on_connect(self, session_present):
        self._just_connected = True

    def _on_disconnect(self, reason):
        self._log("mqtt down: %s" % (reason,))

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
        if len(self._inbox) < INBOX:
            self._inbox.append((topic, msg, retained))
        else:
            self._log("command dropped: inbox full")

    # ---- publishing --------------------------------------------------------------------------
    def _pub(self, topic, payload, retain=False, qos=None):
        if self.mqtt is None:
            return False
        if qos is None:
            qos = self.cfg["mqtt"]["qos"]
        self.published += 1
        return self.mqtt.publish(topic, payload, retain, qos)

    def online(self):
        return self.mqtt is not None and self.mqtt.is_connected()

    def _after_connect(self, now):
        self._just_connected = False
        first = not self._connected_once
        self._connected_once = True
        self._pub(self.topics.status, "online", True, 1)
        for s in self.sensors:
            if s.online is not None:
                self._pub(
                    self.topics.sensor_status(s.name), "online" if s.online else "offline", True, 1
                )
        if not self._info_sent:
            from node import diag

            self._info_sent = True
            self._pub(self.topics.info, diag.info(self), True, 1)
        if first and self.announcer is not None and not (self.rtc and self.rtc.meta.get("disc")):
            self.announcer.schedule(now, 0)
        if self.sleeper:
            self._awake_seen_at = now
            for name, pairs, t, up in self._wake:
                for sub, text in pairs:
                    self._pub(self.topics.value(sub), text)
                if self.cfg["json"]:
                    self._pub(self.topics.json, record(pairs, t, name, None if t else up))
            self._wake = []

    # ---- sensors -----------------------------------------------------------------------------
    def _make_driver(self, scfg):
        return sensing.make_driver(self, scfg)

    # ---- backlog -----------------------------------------------------------------------------
    def _replay_step(self):
        m = self.mqtt
        if m is None or not m.idle():
            return
        if self._replay_out and self.spool is not None:
            # Everything handed out is acknowledged: it may leave the flash now.
            self.spool.commit()
            self._replay_out = 0
        if self.rtc is not None and self.rtc.recs:
            recs = self.rtc.take()
            for i in range(len(recs)):
                if not self._pub(self.topics.backlog, recs[i], False, 1):
                    self.rtc.recs = recs[i:] + self.rtc.recs  # refused: keep the rest
                    break
            return
        if self.spool is None or not self.spool.depth():
            return
        recs = self.spool.peek(REPLAY_BATCH)
        sent = 0
        for r in recs:
            # a corrupt record (None) is skipped but still counted, so commit() removes it
            if r is not None and not self._pub(self.topics.backlog, r, False, 1):
                break  # the wrapper refused it (outbox full): the rest waits for next time
            sent += 1
        if sent < len(recs):
            self.spool.release()
            if sent:
                self.spool.peek(sent)  # reserve exactly what the wrapper took
        self._replay_out = sent

    # ---- commands ----------------------------------------------------------------------------
    def _trial_step(self, now):
        t = self.trial
        if t is None:
            return
        if self.clock.ticks_diff(now, self.t_boot) >= t["timeout"] * 1000:
            self._log("set_config not confirmed in %d s: reverting" % t["timeout"])
            from node.startup import revert_trial

            revert_trial()
            self.trial = None
            self._pub(
                self.topics.result,
                json.dumps(
                    {"ok": False, "cmd": "set_config", "error": "not confirmed in time: reverted"}
                ),
                False,
                1,
            )
            self.shutdown("reset", now)

    # ---- shutdown: reboot or deep sleep --------------------------------------------------------
    def shutdown(self, kind, now, sleep_ms=0):
        if self._shutdown is not None:
            return
        self._shutdown = (kind, self.clock.ticks_add(now, 3000), sleep_ms)
        if self.online():
            self._pub(self.topics.status, "sleeping" if kind == "sleep" else "offline", True, 1)

    def _shutdown_step(self, now):
        sd = self._shutdown
        if sd is None:
            return False
        kind, deadline, ms = sd
        if self.guard is not None and not self.safe_reason and not self._good_marked:
            # Ending the boot on purpose (sleep, commanded reset) is not a failed boot.
            self._good_marked = True
            self.guard.good()
        m = self.mqtt
        if (
            m is not None
            and m.is_connected()
            and not m.idle()
            and self.clock.ticks_diff(now, deadline) < 0
        ):
            return False
        if m is not None:
            if m.is_connected() and self._replay_out and m.idle() and self.spool is not None:
                self.spool.commit()
                self._replay_out = 0
            m.disconnect()
        self.save_state()
        if kind == "sleep":
            self.board.deepsleep(ms)
        else:
            self.board.reset()
        return True

    def save_state(self):
        """Everything kept across a reset: RAM spool to flash, RTC readings."""
        if self.spool is not None:
            self.spool.flush()
        if self.rtc is not None:
            for name, pairs, t, up in self._wake:
                self.rtc.add(record(pairs, t, name, None if t is not None else up))
            self._wake = []
            self.rtc.meta["synced"] = self.time.synced
            if self.announcer is not None and self.announcer.rounds:
                self.rtc.meta["disc"] = True
            self.rtc.save(self.spool)

    # ---- deep-sleep policy -----------------------------------------------------------------
    # ---- the loop ------------------------------------------------------------------------------
    def step(self):
        c = self.clock
        t0 = c.ticks_ms()
        now = t0
        try:
            if self._shutdown is not None and self._shutdown_step(now):
                return
            if self.started and self.mqtt is not None:
                self._wifi_step(now)
                self.mqtt.step()
                if self._just_connected:
                    self._after_connect(now)
                while self._inbox:
                    topic, msg, retained = self._inbox.pop(0)
                    from node import cmdexec  # lazy: most nodes are rarely commanded

                    cmdexec.handle(self, topic, msg, retained, now)
                self.time.step(now, self._wifi_up)
            if self._shutdown is None:
                for s in self.sensors:
                    sensing.sensor_step(self, s, now)
            if self._json_due and self.online() and not sensing.converting(self):
                self._json_due = False
                sensing.publish_json(self, now)
            if self.online():
                if self.announcer is not None:
                    m = self.announcer.step(now)
                    if m is not None:
                        self._pub(m[0], m[1], True, 1)
                if self._shutdown is None:
                    self._replay_step()
                if c.ticks_diff(now, self._diag_due) >= 0:
                    from node import diag

                    self._diag_due = c.ticks_add(now, self.cfg["diag"]["interval"] * 1000)
                    self._pub(self.topics.diag, diag.status(self))
            if (
                not self._good_marked
                and c.ticks_diff(now, self.t_boot) >= self.cfg["safe_mode"]["good_after"] * 1000
            ):
                self._good_marked = True
                self._became_good()
            self._trial_step(now)
            if self.sleeper and self._shutdown is None:
                from node.sleep import sleeper_step

                sleeper_step(self, now)
            self._step_fails = 0
        except Exception as e:  # noqa: BLE001 - count, report, carry on (STYLE 10)
            self._step_fails += 1
            self._log("step failed: %r" % e)
            sys.print_exception(e)
        dt = c.ticks_diff(c.ticks_ms(), t0)
        if dt > self.loop_max_ms:
            self.loop_max_ms = dt
        if self._step_fails < STEP_FAILS_LIMIT:
            self.board.feed()

    def _became_good(self):
        if self.guard is not None and not self.safe_reason:
            self.guard.good()
            if self.cfg_source == "config" and self.trial is None:
                # config.json (+ secrets) was valid at boot and this boot is healthy: keep it.
                # Without re-validating: the validator is the largest module and stays unloaded.
                from node import cfgfile
                from node.startup import _path

                doc, errs = cfgfile.load_doc(_path("config.json"), _path("secrets.json"))
                if doc is not None and not errs:
                    try:
                        cfgfile.keep_good(doc, _path("config.lastgood.json"))
                    except OSError:
                        pass

    def next_wake_ms(self, now):
        """How long the loop may idle before something is due (bounded by 50 ms)."""
        c = self.clock
        d = 50
        for s in self.sensors:
            t = s.ready if s.ready is not None else s.due
            x = c.ticks_diff(t, now)
            if x < d:
                d = x
        return d if d > 0 else 0

    def run(self, steps=None):
        self.start()
        c = self.clock
        self.board.wdt(WDT_MS)
        n = 0
        try:
            while steps is None or n < steps:
                self.step()
                n += 1
                w = self.next_wake_ms(c.ticks_ms())
                if w:
                    c.sleep_ms(w if w < 20 else 20)
        except KeyboardInterrupt:
            self.stop()
            raise

    def stop(self, wait_ms=2000):
        """Clean stop (Ctrl-C): "offline" before DISCONNECT, nothing unflushed left in RAM."""
        m = self.mqtt
        c = self.clock
        if m is not None and m.is_connected():
            self._pub(self.topics.status, "offline", True, 1)
            t0 = c.ticks_ms()
            while not m.idle() and c.ticks_diff(c.ticks_ms(), t0) < wait_ms:
                m.step()
                c.sleep_ms(5)
            m.disconnect()
        self.save_state()

    def _log(self, msg):
        print("node:", msg)


# ---- helpers ------------------------------------------------------------------------------
def _unload(*names):
    """Forget modules used once (the validator): their heap is worth more than a re-import.
    The package keeps each imported submodule as an attribute: drop that reference too."""
    import node

    for name in names:
        sys.modules.pop(name, None)
        short = name.rpartition(".")[2]
        if short in node.__dict__:
            try:
                delattr(node, short)
            except (AttributeError, TypeError):
                pass
    import gc

    gc.collect()


def _crc(s):
    from binascii import crc32

    return crc32(s.encode()) & 0xFFFFFFFF


def _ssl_context(m):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if m.get("ca"):
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(m["ca"], "rb") as f:
            ctx.load_verify_locations(cadata=f.read())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def build(board_factory=None, clock=time, t_reset=None, force_safe=None):
    """Load config, decide safe mode, return (Node or None, safe-mode reason, problems)."""
    from node import startup

    return startup.build(board_factory, clock, t_reset, force_safe)


def main(t_reset=None):
    """Run the node forever (firmware/main.py calls this)."""
    from node import startup

    startup.main(t_reset)
