"""The node: a non-blocking loop serving sensors, MQTT and timers in turn.

`Node` wires small parts that each own one job and loops over them: `Link` (WiFi and the MQTT
wrapper), `Sensing` (drivers, filters), `Delivery` (every reading not yet at the broker),
`Timekeeper`, and, for battery nodes, `Sleeper`. What runs rarely (commands, discovery,
diagnostics, the config files) is imported when needed and dropped after (node.cold). Every
step of the loop is bounded: a sensor is started, then read `conversion_ms` later on another
step; the wrapper does one step per call; the watchdog is fed only while steps complete.
node.startup decides how to start and builds the Node; firmware/main.py runs it.

Topics under the base topic B (e.g. Erdgeschoss/Wohnzimmer):
  B/<Sub>             one plain value per quantity ("21.5"), never nan or a stale number
  B/json              optional document with all current values and the measurement time
  B/status            online / offline / sleeping (retained; the will says offline)
  B/status/<sensor>   online / offline per sensor (retained)
  B/backlog           readings taken while offline, replayed oldest first with their time
  B/cmd, B/result     commands and their results;  B/cmd/awake  retained stay-awake switch
  B/diag              periodic diagnostics, retained;  B/info  retained, once per boot

    from node import startup
    node, reason, problems = startup.build()
    node.run()
"""

import json
import sys

from node import cold
from node import log as _log
from node import led as _led
from node.delivery import Delivery, open_store
from node.link import Link
from node.payload import Topics
from node.sensing import Sensing
from node.timekeep import Timekeeper

WDT_MS = 60000  # watchdog timeout; fed after every completed loop step
STEP_FAILS_LIMIT = 20  # this many failed steps in a row: stop feeding the watchdog
BOOT_GRACE_S = 15  # at boot, wait this long for the broker before the first reading
LOG_PER_STEP = 2  # console lines published to B/log per loop step once connected
SHUTDOWN_MS = 3000  # a reset or deep sleep waits this long for the wrapper to go idle

try:
    from node.version import VERSION as FW  # pyright: ignore[reportMissingImports] - made by build
except ImportError:
    FW = "dev"


class Node:
    def __init__(
        self, cfg, board, clock, safe_reason, source, problems, guard, trial, t_reset=None
    ):
        self.cfg = cfg
        self.board = board
        self.clock = clock
        self.safe_reason = safe_reason
        self.cfg_source = source
        self.cfg_problems = list(problems)
        self.guard = guard  # the boot counter file (node.safemode), or None
        self.trial = trial  # dict while a set_config is not confirmed yet
        self.fw = FW
        self.topics = Topics(cfg["topic"])
        self.t_boot = clock.ticks_ms()
        self.t_reset = self.t_boot if t_reset is None else t_reset
        self.mac = board.mac_hex()
        self.cfg_id = "%08x" % _crc(json.dumps(cfg))
        client_id = cfg["mqtt"].get("client_id") or ("node-" + self.mac)
        self.link = Link(cfg, board, clock, client_id, self.log)
        t = cfg["time"]
        self.time = Timekeeper(t["ntp"], t["retries"], t["resync"], clock)
        _log.uptime = self._uptime
        self.sleeper = None
        if cfg["deep_sleep"]["enabled"] and not safe_reason:
            from node.sleep import Sleeper

            sl = self.sleeper = Sleeper(cfg["deep_sleep"], board, clock, self.t_reset)
            if sl.meta.get("synced") and board.woke_from_deepsleep():
                # The RTC kept the time through deep sleep: NTP only when the resync is due.
                tk = self.time
                tk.mark_synced(None, sl.meta.get("ts"))
                tk.mark_synced(sl.resync_in(tk.unix(), t["resync"]))
        store = None if safe_reason else open_store(cfg["spool"])
        self.delivery = Delivery(
            self.link,
            self.topics,
            store,
            clock,
            self.time,
            self.t_boot,
            cfg["json"],
            self.sleeper is not None,
        )
        self.sensing = Sensing(cfg["sensors"], board, clock, self.delivery, self.log, self.time)
        self.led = _led.make(cfg, board, clock, self.log)  # None: no status LED to drive
        self.announcer = None  # while a discovery round is due or under way
        self.announced = 0  # discovery rounds completed this boot
        self.started = False
        self.loop_max_ms = 0
        self._diag_due = 0  # uptime (s) of the next diagnostics document
        self._diag_synced = False  # the last one carried the time
        self._info_sent = False
        self._ota_on, self._ota_trial = _ota_boot_state(safe_reason)
        self._good_marked = False
        self._step_fails = 0
        self._shutdown = None  # (kind, deadline, ms) once a reboot or sleep is under way
        _log.say(
            "boot", "firmware %s, reset cause %s, config %s" % (FW, board.reset_cause(), source)
        )
        if safe_reason:
            _log.say("safe mode", safe_reason)

    @property
    def published(self):
        return self.link.published

    # ---- set-up ----------------------------------------------------------------------------
    def start(self):
        sl = self.sleeper
        if sl is not None:
            # A battery node's wake: every conversion first, then WiFi, so they overlap.
            self.sensing.step(self.clock.ticks_ms())
            if not sl.net:  # an outage: this wake's readings go to the store
                return
        self.start_network()

    def start_network(self):
        if self.started:
            return
        self.started = True
        tp = self.topics
        subs = []
        if self.cfg["commands"]["enabled"]:
            subs.append((tp.cmd, 1))
        if self._ota_on:
            subs.append((tp.base + "/ota/+", 1))
        if self.sleeper is not None:
            subs.append((tp.awake, 1))
        if self._discovery_on():
            subs.append((self._ha_status(), 0))
        self.link.start(tp.status, subs)

    def _discovery_on(self):
        return self.cfg["discovery"]["enabled"] and not self.safe_reason and self.sensing.sensors

    def _ha_status(self):
        return self.cfg["discovery"]["prefix"] + "/status"

    # ---- cold parts ------------------------------------------------------------------------
    def info(self):
        from node import diag

        text = diag.info(self)
        cold.unload("node.diag")
        return text

    def publish_diag(self):
        from node import diag

        text = diag.status(self)
        cold.unload("node.diag")
        # Retained: `nodectl fleet` shows a node's last figures even while it is off.
        self.link.publish(self.topics.diag, text, True)

    def _announcer(self):
        if self.announcer is None:
            from node.discovery import Announcer

            self.announcer = Announcer(self.cfg, self.topics, self.mac, self.fw)
        return self.announcer

    def _announce_step(self, now):
        a = self.announcer
        if a is None:
            return
        m = a.step(now)
        if m is not None:
            self.link.publish(m[0], m[1], True, 1)
        elif not a.pending():
            self.announced += a.rounds
            self.announcer = None
            cold.unload("node.discovery")

    def _message(self, topic, msg, retained, now):
        if topic == self.topics.cmd:
            from node import cmdexec

            cmdexec.handle(self, msg, retained, now)
            del cmdexec
            cold.unload("node.cmdexec", "node.commands", "node.cfgfile")
        elif self._ota_on and topic.startswith(self.topics.base + "/ota/"):
            from node import otamsg

            otamsg.handle(self, topic, msg, now)
            del otamsg
            cold.unload("node.otamsg", "node.ota")
        elif self.sleeper is not None and topic == self.topics.awake:
            self.sleeper.set_awake(msg)
        elif self._discovery_on() and topic == self._ha_status() and not retained:
            # HA's birth message (a retained copy is old news): the set again after 1..10 s
            self._announcer().on_ha_status(msg, now)

    def guard_good(self):
        from node import safemode

        safemode.good(self.guard)
        cold.unload("node.safemode")

    def end_trial(self):
        self.trial = None

    # ---- the loop ------------------------------------------------------------------------------
    def _connected(self, now):
        lk, tp = self.link, self.topics
        first = not self._info_sent  # the first connect of this boot
        lk.publish(tp.status, "online", True, 1)
        self.sensing.republish()
        if not self._info_sent:
            self._info_sent = True
            lk.publish(tp.info, self.info(), True, 1)
            if self._ota_on:
                self._ota_connected()
        sl = self.sleeper
        if first and self._discovery_on() and not (sl and sl.meta.get("disc")):
            self._announcer().schedule(now, 0)
        if sl is not None:
            sl.connected(now)
        self.delivery.connected()

    def busy(self):
        """Something is still to go out: commands, discovery, readings, unacknowledged."""
        return bool(
            self.link.inbox
            or self.announcer is not None
            or self.delivery.pending()
            or not self.link.idle()
        )

    def step(self):
        c = self.clock
        t0 = c.ticks_ms()
        now = t0
        try:
            up = self.time.uptime(now)  # every step: keeps uptime exact past the ticks wrap
            if self._shutdown is not None and self._shutdown_step(now):
                return
            lk = self.link
            if self.started:
                if lk.step(now):
                    self._connected(now)
                while lk.inbox:
                    topic, msg, retained = lk.inbox.pop(0)
                    self._message(topic, msg, retained, now)
                self.time.step(now, lk.wifi_up)
            live = self._shutdown is None
            if live:
                hold = (
                    self.sleeper is None
                    and self.started
                    and not lk.connected_once
                    and up < BOOT_GRACE_S
                )  # the first readings of a boot go live, not to the backlog
                self.sensing.step(now, hold)
            self.delivery.step(now, self.sensing.busy(), live)
            if lk.online():
                for _ in range(LOG_PER_STEP):
                    line = _log.take()
                    if line is None:
                        break
                    lk.publish(self.topics.base + "/log", line, False, 0)
                if self.announcer is not None:
                    self._announce_step(now)
                # Uptime, not ticks: an outage may last weeks. One more as soon as the clock is
                # synced, so the retained document carries a time (the fleet's "last seen").
                if up >= self._diag_due or (self.time.synced and not self._diag_synced):
                    self._diag_due = up + self.cfg["diag"]["interval"]
                    self._diag_synced = self.time.synced
                    self.publish_diag()
            if not self._good_marked and up >= self.cfg["safe_mode"]["good_after"]:
                self._good_marked = True
                self._became_good()
            self._trial_step(now, up)
            if self.sleeper is not None and self._shutdown is None:
                act = self.sleeper.step(now, self)
                if act is not None:
                    self.shutdown("sleep", now, act[1])
            if self.led is not None:
                self.led.step(now, self)
            self._step_fails = 0
        except Exception as e:  # noqa: BLE001 - count, report, carry on
            self._step_fails += 1
            self.log("step failed: %r" % e)
            sys.print_exception(e)
        dt = c.ticks_diff(c.ticks_ms(), t0)
        if dt > self.loop_max_ms:
            self.loop_max_ms = dt
        if self._step_fails < STEP_FAILS_LIMIT:
            self.board.feed()

    def _became_good(self):
        if self.guard is not None and not self.safe_reason:
            self.guard_good()
            if self.cfg_source == "config" and self.trial is None:
                from node import cfgfile

                cfgfile.keep_healthy()
                del cfgfile
                cold.unload("node.cfgfile")

    def _ota_connected(self):
        # Connected and the status published: a version on trial has proved itself.
        from node import ota, otamsg

        if self._ota_trial and ota.confirm():
            self.log("ota: version %s confirmed" % ota.status()["version"])
        self._ota_trial = 0
        self.link.publish(self.topics.base + "/ota/state", otamsg.state_text(), True, 1)
        del ota, otamsg
        cold.unload("node.otamsg", "node.ota")

    def _trial_step(self, now, up):
        t = self.trial
        ot = self._ota_trial  # seconds the version on trial has, 0 when none
        if ot and up >= ot:
            from node import ota

            ota.trial_expired(ot)
            cold.unload("node.ota")
            self._ota_trial = 0
            self.log("ota: new version did not connect in %d s: rolling back" % ot)
            self.shutdown("reset", now)
        if t is None or up < t["timeout"]:
            return
        self.log("set_config not confirmed in %d s: reverting" % t["timeout"])
        from node import cfgfile

        cfgfile.revert()
        del cfgfile
        cold.unload("node.cfgfile")
        self.trial = None
        err = '{"ok":false,"cmd":"set_config","error":"not confirmed in time: reverted"}'
        self.link.publish(self.topics.result, err, False, 1)
        self.shutdown("reset", now)

    # ---- shutdown: reboot or deep sleep --------------------------------------------------------
    def shutdown(self, kind, now, sleep_ms=0):
        if self._shutdown is not None:
            return
        self._shutdown = (kind, self.clock.ticks_add(now, SHUTDOWN_MS), sleep_ms)
        if self.link.online():
            self.link.publish(
                self.topics.status, "sleeping" if kind == "sleep" else "offline", True, 1
            )

    def _shutdown_step(self, now):
        if self._shutdown is None:
            return
        kind, deadline, ms = self._shutdown
        if self.guard is not None and not self.safe_reason and not self._good_marked:
            # Ending the boot on purpose (sleep, commanded reset) is not a failed boot.
            self._good_marked = True
            self.guard_good()
        lk = self.link
        if lk.online() and not lk.idle() and self.clock.ticks_diff(now, deadline) < 0:
            return False
        self.delivery.settle()
        lk.close()
        self.save_state()
        if kind == "sleep":
            self.board.deepsleep(ms)
        else:
            self.board.reset()
        return True

    def save_state(self):
        """Everything kept across a reset: undelivered readings on flash, RTC facts."""
        self.delivery.save()
        if self.sleeper is not None:
            self.sleeper.save(self.time.synced, self.announced > 0, self.time.synced_at)

    def next_wake_ms(self, now):
        """How long the loop may idle before something is due (bounded by 50 ms)."""
        if self.sleeper is not None and self.link.online() and self.busy():
            return 1  # a battery wake waits for acknowledgements: every ms awake costs charge
        return self.sensing.next_ms(now, 50)

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
        self.link.drain((self.topics.status, "offline"), wait_ms)
        self.delivery.settle()
        self.link.close()
        self.save_state()

    def log(self, msg):
        _log.say("node", msg)

    def _uptime(self):
        return self.time.uptime(self.clock.ticks_ms())


def _ota_boot_state(safe_reason):
    """(OTA on, seconds of the running trial or 0) at start; a safe-mode node neither updates
    nor confirms."""
    from node import ota

    on = ota.enabled() and not safe_reason
    ptr = ota.read_pointer() if on else {}
    trial = (ptr.get("trial_s") or ota.TRIAL_S) if "trial" in ptr else 0
    cold.unload("node.ota")
    return on, trial


def _crc(s):
    from binascii import crc32

    return crc32(s.encode()) & 0xFFFFFFFF
