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

from node import config as _config
from node.filters import Chain, recompute_rh
from node.payload import Topics, fmt, record

FAIL_LIMIT = 2           # consecutive failed reads before a sensor is marked offline
WDT_MS = 60000           # watchdog timeout; fed after every completed loop step
WIFI_TRY_MS = 20000      # give one network this long before trying the next
REPLAY_BATCH = 10        # backlog records handed to MQTT per batch
INBOX = 4                # commands buffered between MQTT callback and loop
STEP_FAILS_LIMIT = 20    # this many failed steps in a row: stop feeding the watchdog
SLEEP_GRACE_MS = 600     # after connecting, time for a retained stay-awake to arrive
BOOT_GRACE_MS = 15000    # at boot, wait this long for the broker before the first reading

try:
    from node.version import VERSION as FW
except ImportError:
    FW = "dev"


class SensorRT:
    """One configured sensor at run time: driver, chains, schedule, health."""

    def __init__(self, scfg, now):
        self.cfg = scfg
        self.name = scfg["name"]
        self.drv = None
        self.chains = {}
        for qn in scfg["quantities"]:
            q = scfg["quantities"][qn]
            if q.get("publish", True):
                self.chains[qn] = Chain(q)
        self.interval_ms = scfg["interval"] * 1000
        self.due = now
        self.ready = None      # ticks_ms when a started conversion can be read
        self.errors = 0
        self.consec = 0
        self.online = None     # unknown until the first read
        self.last_error = None
        self.reads = 0
        self.latest = {}       # sub -> formatted text of the last good value


class Node:
    def __init__(self, cfg, board, clock=time, safe_reason=None, source="config", problems=(),
                 guard=None, trial=None, mqtt_factory=None, sleeper=None, t_reset=None):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.safe_reason = safe_reason
        self.cfg_source = source
        self.cfg_problems = list(problems)
        self.guard = guard
        self.trial = trial     # dict when running a set_config that is not confirmed yet
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
                self.sensors.append(SensorRT(s, self.t_boot))
        from node.timekeep import Timekeeper
        t = cfg["time"]
        self.time = Timekeeper(t["ntp"], t["retries"], t["resync"], clock)
        self.spool = None
        if not safe_reason:
            from node.spool import Spool
            sp = cfg["spool"]
            self.spool = Spool(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"])
        self.sleep_cfg = cfg["deep_sleep"]
        self.sleeper = sleeper if sleeper is not None else (
            self.sleep_cfg["enabled"] and not safe_reason)
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
        self._awake = False     # a retained stay-awake switch is on
        self._awake_seen_at = None
        self.published = 0
        self.started = False
        self._sleep_reads_done = False
        self._wake = []         # sleeper: readings of this wake not yet published
        self._json_due = False

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
        self.mqtt = c = make(self.client_id, m["host"], m["port"], m["user"], m["password"],
                             m["keepalive"], wlan=self.board.wlan(), clock=self.clock,
                             connect_timeout=5, backoff_min=1000, backoff_max=60000,
                             clean_session=True, **kw)
        c.set_callback(self._on_msg)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
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
        if not up and self._wifi_started is not None and c.ticks_diff(now, self._wifi_started) >= WIFI_TRY_MS:
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
        retained = False
        try:
            # The wrapper passes (topic, msg); the client keeps the fixed-header flags of the
            # message being delivered (bit 0 = RETAIN).
            retained = bool(self.mqtt._c.rx_flags & 1)
        except Exception:  # noqa: BLE001
            if rest:
                retained = bool(rest[0])
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
                self._pub(self.topics.sensor_status(s.name), "online" if s.online else "offline", True, 1)
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
    def _sensor_step(self, s, now):
        c = self.clock
        if s.ready is None:
            if c.ticks_diff(now, s.due) < 0:
                return
            if (not self.sleeper and not self._connected_once and self.started
                    and c.ticks_diff(now, self.t_boot) < BOOT_GRACE_MS):
                return  # the first readings of a boot go live, not to the backlog
            s.due = c.ticks_add(s.due, s.interval_ms)
            if c.ticks_diff(s.due, now) <= 0:  # fell behind (long outage of the loop): resync
                s.due = c.ticks_add(now, s.interval_ms)
            try:
                if s.drv is None:
                    s.drv = self._make_driver(s.cfg)
                s.drv.start()
                # From now, not from the step's start: building the driver took bus time.
                s.ready = c.ticks_add(c.ticks_ms(), getattr(s.drv, "conversion_ms", 0) or 0)
            except Exception as e:  # noqa: BLE001 - any driver fault is a failed reading
                self._sensor_failed(s, e)
                return
        if s.ready is not None and c.ticks_diff(now, s.ready) >= 0:
            s.ready = None
            try:
                raw = s.drv.read()
            except Exception as e:  # noqa: BLE001
                self._sensor_failed(s, e)
                return
            self._sensor_ok(s, raw, now)

    def _make_driver(self, scfg):
        import sensors
        kw = dict(scfg.get("params") or {})
        if scfg.get("address") is not None:
            kw["address"] = scfg["address"]
        if scfg.get("rom"):
            kw["rom"] = scfg["rom"]
        return sensors.make(scfg["type"], self.board.bus_for(scfg), **kw)

    def _set_sensor_online(self, s, on):
        if s.online != on:
            s.online = on
            if self.online():
                self._pub(self.topics.sensor_status(s.name), "online" if on else "offline", True, 1)

    def _sensor_failed(self, s, e):
        s.errors += 1
        s.consec += 1
        s.last_error = repr(e)
        if isinstance(e, OSError):
            # A device that vanished must be re-probed (and re-identified) next time.
            s.drv = None
        if s.consec >= FAIL_LIMIT:
            self._set_sensor_online(s, False)
        self._log("sensor %s: %r" % (s.name, e))

    def _sensor_ok(self, s, raw, now):
        s.consec = 0
        s.reads += 1
        qs = s.cfg["quantities"]
        if ("humidity" in raw and "temperature" in raw and "humidity" in s.chains
                and "temperature" in s.chains and qs["humidity"].get("recompute", True)):
            cal = s.chains["temperature"].cal
            t = raw["temperature"]
            if not cal.is_identity() and t is not None and raw["humidity"] is not None:
                raw["humidity"] = recompute_rh(raw["humidity"], t, cal.apply(t))
        pairs = []
        now_s = self.clock.ticks_diff(now, self.t_boot) / 1000
        for qn in s.chains:
            ch = s.chains[qn]
            v = ch.feed(raw.get(qn), now_s)
            if v is None:
                continue
            text = fmt(v, qs[qn]["decimals"])
            if text is None:
                continue
            sub = qs[qn]["topic"]
            s.latest[sub] = text
            pairs.append((sub, text))
        self._set_sensor_online(s, True)
        if pairs:
            self._emit(s, pairs, now)

    def _emit(self, s, pairs, now):
        t = self.time.unix()
        if self.online() and not (self.sleeper and self._shutdown):
            for sub, text in pairs:
                self._pub(self.topics.value(sub), text)
            if self.cfg["json"]:
                self._json_due = True  # one document per step, with every sensor's values
        elif self.sleeper and not self._connected_once and len(self._wake) < 16:
            # Taken this wake before the network is up: published live once connected.
            self._wake.append((s.name, pairs, t, self._uptime_s(now)))
        else:
            rec = record(pairs, t, s.name, None if t is not None else self._uptime_s(now))
            if self.rtc is not None:
                self.rtc.add(rec)
                if len(self.rtc.recs) > 32 and self.spool is not None:
                    self.spool.put(self.rtc.recs.pop(0))  # RTC memory is small: bound it
            elif self.spool is not None:
                self.spool.put(rec)

    def _converting(self):
        for s in self.sensors:
            if s.ready is not None:
                return True
        return False

    def _publish_json(self, now):
        t = self.time.unix()
        allv = []
        for x in self.sensors:
            for k in x.latest:
                allv.append((k, x.latest[k]))
        self._pub(self.topics.json, record(allv, t, None, None if t else self._uptime_s(now)))

    def _uptime_s(self, now):
        return self.clock.ticks_diff(now, self.t_boot) // 1000

    # ---- backlog -----------------------------------------------------------------------------
    def _replay_step(self):
        m = self.mqtt
        if not m.idle():
            return
        if self._replay_out:
            # Everything handed out is acknowledged: it may leave the flash now.
            self.spool.commit()
            self._replay_out = 0
        if self.rtc is not None and self.rtc.recs:
            for r in self.rtc.take():
                self._pub(self.topics.backlog, r, False, 1)
            return
        if self.spool is None or not self.spool.depth():
            return
        recs = self.spool.peek(REPLAY_BATCH)
        self._replay_out = len(recs)
        for r in recs:
            if r is not None:
                self._pub(self.topics.backlog, r, False, 1)

    # ---- commands ----------------------------------------------------------------------------
    def _handle(self, topic, msg, retained, now):
        if isinstance(topic, (bytes, bytearray)):
            topic = bytes(topic).decode()
        if self.announcer is not None and topic == self.announcer.status_topic:
            if not retained:  # HA's birth message; a retained copy is old news
                self.announcer.on_ha_status(bytes(msg), now)
            return
        if topic == self.topics.awake:
            v = bytes(msg).strip().lower()
            self._awake = v in (b"1", b"on", b"true", b"stay")
            return
        if topic != self.topics.cmd:
            return
        from node import commands
        names = {}
        for s in self.sensors:
            names[s.name] = list(s.chains)
        cmd, err = commands.parse(bytes(msg), retained, self.cfg["commands"]["max_bytes"], names)
        if cmd is None and err is None:
            return  # retained: a stale command never fires
        if err:
            self._pub(self.topics.result, commands.result(None, False, error=err), False, 1)
            return
        if self.safe_reason and cmd["cmd"] not in commands.SAFE:
            self._pub(self.topics.result, commands.result(
                cmd, False, error="safe mode (%s): only %s" % (self.safe_reason, ", ".join(commands.SAFE))), False, 1)
            return
        try:
            res = self._run_cmd(cmd, now)
        except Exception as e:  # noqa: BLE001 - a command must never take the node down
            res = commands.result(cmd, False, error="failed: %r" % e)
        if res:
            self._pub(self.topics.result, res, False, 1)

    def _run_cmd(self, cmd, now):
        from node import commands
        name = cmd["cmd"]
        ok = commands.result
        if name == "read":
            for s in self.sensors:
                s.due = now
            return ok(cmd, True, sensors=len(self.sensors))
        if name == "status":
            from node import diag
            self._pub(self.topics.diag, diag.status(self))
            return ok(cmd, True)
        if name == "interval":
            sec = cmd["seconds"]
            for s in self.sensors:
                if cmd.get("sensor") in (None, s.name):
                    s.interval_ms = sec * 1000
                    s.due = now

            def mut(doc):
                if "sensor" in cmd:
                    for sd in doc.get("sensors", []):
                        if sd.get("name", sd.get("type")) == cmd["sensor"]:
                            sd["interval"] = sec
                else:
                    doc["interval"] = sec
                    for sd in doc.get("sensors", []):
                        sd.pop("interval", None)
            err = self._persist(mut)
            return ok(cmd, True, seconds=sec, saved=err is None, **({"note": err} if err else {}))
        if name == "calibrate":
            return self._calibrate(cmd)
        if name == "get_config":
            return ok(cmd, True, config=commands.redact(self.cfg), source=self.cfg_source,
                      trial=self.trial is not None)
        if name == "set_config":
            return self._set_config(cmd, now)
        if name == "confirm":
            if self.trial is None:
                return ok(cmd, False, error="nothing to confirm: no set_config is on trial")
            _config.keep_good(self._merged_doc(), _path("config.lastgood.json"))
            _remove(_path("config.trial"))
            _remove(_path("config.json.bak"))
            self.trial = None
            return ok(cmd, True, kept=True)
        if name == "reboot":
            self.shutdown("reset", now)
            return ok(cmd, True, rebooting=True)
        if name == "leave_safe_mode":
            if self.guard is not None:
                self.guard.leave()
            if not self.safe_reason:
                return ok(cmd, True, note="not in safe mode")
            self.shutdown("reset", now)
            return ok(cmd, True, rebooting=True)
        return ok(cmd, False, error="not handled")

    def _calibrate(self, cmd):
        from node import commands
        s = None
        for x in self.sensors:
            if x.name == cmd["sensor"]:
                s = x
        ch = s.chains[cmd["quantity"]]
        cal = ch.cal
        off, sc, tp = cal.offset, cal.scale, cal.two_point
        if "scale" in cmd:
            sc = cmd["scale"]
        if "two_point" in cmd:
            tp = cmd["two_point"]
        if "offset" in cmd:
            off = cmd["offset"]
        if "reference" in cmd:
            if ch.last_value is None:
                return commands.result(cmd, False, error="no reading yet to compare with the reference")
            off = off + (cmd["reference"] - ch.last_value)
        cal.set(off, sc, tp)
        ch.reset()
        q = s.cfg["quantities"][cmd["quantity"]]
        q["offset"], q["scale"], q["two_point"] = off, sc, tp

        def mut(doc):
            for sd in doc.get("sensors", []):
                if sd.get("name", sd.get("type")) == s.name:
                    qs = sd.setdefault("quantities", {})
                    qd = qs.setdefault(cmd["quantity"], {})
                    if qd is False:
                        return
                    qd["offset"], qd["scale"] = off, sc
                    if tp:
                        qd["two_point"] = tp
        err = self._persist(mut)
        return commands.result(cmd, True, offset=off, scale=sc, two_point=tp, saved=err is None)

    def _merged_doc(self):
        doc, _ = _config.load_doc(_path("config.json"), _path("secrets.json"))
        return doc

    def _persist(self, mutate):
        """Apply `mutate` to config.json on flash if the result stays valid. None or a reason."""
        doc, errs = _config.read_json(_path("config.json"))
        if doc is None:
            return errs
        mutate(doc)
        merged = json.loads(json.dumps(doc))
        sec, _ = _config.read_json(_path("secrets.json"))
        if isinstance(sec, dict):
            merged = _config.merge(merged, sec)
        if _config.validate(merged):
            return "the change would make config.json invalid; kept for this run only"
        _config.save_json(_path("config.json"), doc)
        if self.trial is None:
            _config.keep_good(merged, _path("config.lastgood.json"))
        return None

    def _set_config(self, cmd, now):
        from node import commands
        cur, err = _config.read_json(_path("config.json"))
        if cur is None or not cmd.get("merge", True):
            new = cmd["config"]
        else:
            new = _config.merge(json.loads(json.dumps(cur)), cmd["config"])
        merged = json.loads(json.dumps(new))
        sec, _ = _config.read_json(_path("secrets.json"))
        if isinstance(sec, dict):
            merged = _config.merge(merged, sec)
        problems = _config.validate(merged)
        if problems:
            return commands.result(cmd, False, error="invalid config: nothing changed",
                                   problems=problems[:20])
        timeout = cmd.get("confirm_timeout") or self.cfg["commands"]["confirm_timeout"]
        # The running config is the one to go back to: make sure a copy exists.
        if self.trial is None and cur is not None:
            _config.save_json(_path("config.json.bak"), cur)
            cur_merged = self._merged_doc()
            if cur_merged is not None and not _config.validate(cur_merged):
                _config.keep_good(cur_merged, _path("config.lastgood.json"))
        _config.save_json(_path("config.json"), new)
        _config.save_json(_path("config.trial"), {"timeout": timeout, "boots": 0})
        self.shutdown("reset", now)
        return commands.result(cmd, True, applied=True, confirm_within=timeout, rebooting=True)

    def _trial_step(self, now):
        t = self.trial
        if t is None:
            return
        if self.clock.ticks_diff(now, self.t_boot) >= t["timeout"] * 1000:
            self._log("set_config not confirmed in %d s: reverting" % t["timeout"])
            revert_trial()
            self.trial = None
            self._pub(self.topics.result, json.dumps(
                {"ok": False, "cmd": "set_config", "error": "not confirmed in time: reverted"}), False, 1)
            self.shutdown("reset", now)

    # ---- shutdown: reboot or deep sleep --------------------------------------------------------
    def shutdown(self, kind, now, sleep_ms=0):
        if self._shutdown is not None:
            return
        self._shutdown = (kind, self.clock.ticks_add(now, 3000), sleep_ms)
        if self.online():
            self._pub(self.topics.status, "sleeping" if kind == "sleep" else "offline", True, 1)

    def _shutdown_step(self, now):
        kind, deadline, ms = self._shutdown
        if self.guard is not None and not self.safe_reason and not self._good_marked:
            # Ending the boot on purpose (sleep, commanded reset) is not a failed boot.
            self._good_marked = True
            self.guard.good()
        m = self.mqtt
        if m is not None and m.is_connected() and not m.idle() and self.clock.ticks_diff(now, deadline) < 0:
            return False
        if m is not None:
            if m.is_connected() and self._replay_out and m.idle():
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
    def _sleeper_step(self, now):
        c = self.clock
        # from the reset (main.py's first line): the cap includes booting and importing,
        # as the battery sees it
        up = c.ticks_diff(now, self.t_reset)
        cap = self.sleep_cfg["awake_cap"] * 1000
        if not self._sleep_reads_done:
            if all(s.reads or s.errors for s in self.sensors) or up >= cap // 2:
                self._sleep_reads_done = True
                self._start_network()
            return
        if up >= cap and not self._awake:
            # Hard cap: broker or not, the battery decides.
            self._go_sleep(now, up)
            return
        if self._awake:
            return
        if not self.online() or self._awake_seen_at is None:
            return
        if c.ticks_diff(now, self._awake_seen_at) < SLEEP_GRACE_MS:
            return
        if self.announcer is not None and self.announcer.pending():
            return
        if self._inbox or (self.rtc and self.rtc.recs) or (self.spool and self.spool.depth()) \
                or not self.mqtt.idle():
            return
        self._go_sleep(now, up)

    def _go_sleep(self, now, up):
        iv = self.sleep_cfg["interval"] * 1000
        ms = iv - up if iv - up > 1000 else 1000
        self.shutdown("sleep", now, ms)

    # ---- the loop ------------------------------------------------------------------------------
    def step(self):
        c = self.clock
        t0 = c.ticks_ms()
        now = t0
        try:
            if self._shutdown is not None and self._shutdown_step(now):
                return
            if self.started:
                self._wifi_step(now)
                self.mqtt.step()
                if self._just_connected:
                    self._after_connect(now)
                while self._inbox:
                    topic, msg, retained = self._inbox.pop(0)
                    self._handle(topic, msg, retained, now)
                self.time.step(now, self._wifi_up)
            if self._shutdown is None:
                for s in self.sensors:
                    self._sensor_step(s, now)
            if self._json_due and self.online() and not self._converting():
                self._json_due = False
                self._publish_json(now)
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
            if not self._good_marked and c.ticks_diff(now, self.t_boot) >= self.cfg["safe_mode"]["good_after"] * 1000:
                self._good_marked = True
                self._became_good()
            self._trial_step(now)
            if self.sleeper and self._shutdown is None:
                self._sleeper_step(now)
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
                doc = self._merged_doc()
                if doc is not None and not _config.validate(doc):
                    try:
                        _config.keep_good(doc, _path("config.lastgood.json"))
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
_ROOT = ""


def _path(name):
    return _ROOT + name


def _remove(p):
    import os
    try:
        os.remove(p)
    except OSError:
        pass


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


def revert_trial():
    """Put the config from before an unconfirmed set_config back."""
    import os
    try:
        os.stat(_path("config.json.bak"))
        _remove(_path("config.json"))
        os.rename(_path("config.json.bak"), _path("config.json"))
    except OSError:
        pass
    _remove(_path("config.trial"))


def _trial_state():
    """The trial marker of an unconfirmed set_config (counting boots), or None."""
    t, _ = _config.read_json(_path("config.trial"))
    if not isinstance(t, dict):
        return None
    t["boots"] = t.get("boots", 0) + 1
    if t["boots"] > 2:
        # The new config did not make it to a confirm in two boots: go back.
        revert_trial()
        return None
    _config.save_json(_path("config.trial"), t)
    return t


def salvage(doc):
    """From an invalid config, what safe mode can still use: wifi, mqtt, topic. None if not."""
    if not isinstance(doc, dict):
        return None
    probe = {"version": 1, "board": "esp32-devkitc", "topic": doc.get("topic", "node"),
             "wifi": doc.get("wifi"), "mqtt": doc.get("mqtt")}
    cfg = _config.normalize(probe)
    if cfg is None:
        probe["topic"] = "node"
        cfg = _config.normalize(probe)
    if cfg is not None and isinstance(doc.get("board"), str):
        cfg["board"] = doc["board"]
    return cfg


def build(board_factory=None, clock=time, t_reset=None):
    """Load config, decide safe mode, and return a ready Node (not started)."""
    from node.safemode import BootGuard
    trial = _trial_state()
    cfg, source, problems = _config.load(_path("config.json"), _path("secrets.json"),
                                         _path("config.lastgood.json"))
    guard = BootGuard(_path("bootstate.json"))
    name = cfg["board"] if cfg else "esp32-devkitc"
    if board_factory is None:
        from node.board import Board
        board_factory = Board.load
    board = board_factory(name)
    held = cfg is None or cfg["safe_mode"]["button"]
    bad = cfg["safe_mode"]["bad_boots"] if cfg else 3
    reason = guard.begin(bad, cfg is not None, held and board.button_held())
    for p in problems:
        print("config:", p)
    if reason:
        print("node: safe mode:", reason)
        if cfg is None:
            doc, _ = _config.load_doc(_path("config.json"), _path("secrets.json"))
            cfg = salvage(doc)
            if cfg is None:
                return None, reason, problems
            source = "salvaged"
        cfg["sensors"] = []
    if source != "config":
        trial = None
    return (Node(cfg, board, clock, reason, source, problems, guard, trial, t_reset=t_reset),
            reason, problems)


def main(t_reset=None):
    """Run the node; t_reset is time.ticks_ms() taken as early as possible after the reset."""
    node, reason, problems = build(t_reset=t_reset)
    if node is None:
        # Nothing to reach the network with: idle (no boot loop), look for a fixed config.
        print("node: no usable config; waiting for config.json to be fixed")
        while True:
            time.sleep(30)
            cfg, _, _ = _config.load(_path("config.json"), _path("secrets.json"), None)
            if cfg is not None:
                import machine
                machine.reset()
    node.run()
