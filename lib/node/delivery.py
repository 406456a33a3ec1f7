"""Delivery owns every reading that has not reached the broker yet.

A reading (sensor name + formatted values) is handed over by sensing and from then on is this
module's business only:
- online: published live on its value topics (and in the JSON document once the step's sensors
  are read). A plain value carries no time, so it must go out in time or not at all: until the
  wrapper is idle (all acknowledged) the reading is watched (at most LIVE); if the link drops or
  its interval passes first, whatever the wrapper has not written yet is taken back and the
  reading goes to the store with its measurement time. A full watch list sends new readings
  to the store;
- refused by the wrapper (outbox full), or offline: one record with its measurement time goes
  to the durable store (RAM window over CRC-checked segments on flash). While offline each
  record is written through to flash at once, so a power cut loses no reading already taken;
- a battery node holds the readings of a wake taken before its network is up (at most HOLD)
  and publishes them live when it connects, or stores them before it sleeps.
Stored records are replayed oldest first on B/backlog, pipelined (at most REPLAY_WINDOW handed
out, batches going out while earlier ones await their acks), and a batch is removed from the
store only when the wrapper holds none of its records any more (all acknowledged). A record handed
out but not acknowledged at a power cut is sent again after the reboot: each record carries its
own time ("t", or "up" seconds since boot when the clock was not synced), so a consumer can
drop the repeat.

    d = Delivery(link, topics, open_store(cfg["spool"]), clock, timekeeper, t_boot, json_doc)
    d.reading("bme280", [("Temp", "21.5")], now)
    d.step(now, busy)        # once per loop step: JSON document, backlog replay
"""

from node.payload import record

REPLAY_BATCH = 10  # backlog records handed to the wrapper per batch (one store read)
# Backlog records handed out and not yet acknowledged, at most: the wrapper's window (8 in
# flight) plus as many queued behind it, so it rarely waits for the next step's batch (on the
# sim, 16 and 24 drain a day's backlog equally fast). Each costs heap while out (153 B on the
# twin for a 67 B record and its outbox entry): with 24 the node's smallest heap on the twin
# grew from 48 to 56 KB, with 16 it stays at 48. The bound stays well inside the wrapper's
# outbox (100 messages), which therefore never evicts one of them (the wrapper would then no
# longer hold it, and it would count as acknowledged).
REPLAY_WINDOW = 16
COMMIT_EVERY = 40  # acknowledged backlog records gathered into one store commit
HOLD = 16  # readings a battery node holds before its first connect of a wake; more go stored
LIVE = 16  # live readings watched until acknowledged; more go to the store, never late


def open_store(sp):
    """The durable store from the config's `spool` section (safe mode opens none)."""
    from mqtt.store import Store

    return Store(sp["file"], sp["ram"], sp["max_bytes"], sp["batch"])


class Delivery:
    def __init__(self, link, topics, store, clock, tk, t_boot, json_doc=False, hold=False):
        self.link = link
        self.topics = topics
        self.store = store  # None in safe mode: no readings there
        self.clock = clock
        self.tk = tk
        self.t_boot = t_boot
        self.json_doc = json_doc
        self.hold = hold  # a battery node before its first connect of this wake
        self.latest = {}  # subtopic -> text of the newest value (the JSON document's content)
        self._held = []  # (name, pairs, t, up)
        self._json_t = False  # False: no document due; else its measurement time (or None)
        self._out = []  # batches of backlog records handed to the wrapper, oldest first
        self._n_out = 0  # records in them, plus those acknowledged and not yet committed
        self._acked = 0  # backlog records acknowledged, still to be committed
        self._live = []  # [name, pairs, t, up, deadline ticks]: live, not yet acknowledged
        self.late = 0  # live readings (or part of one) taken back to the store as late

    # ---- from sensing -------------------------------------------------------------------------
    def reading(self, name, pairs, now, within=0):
        """A new reading; `within` ms (its interval): live only if it goes out by then."""
        t = self.tk.unix()
        up = self.tk.uptime(now)
        for sub, text in pairs:
            self.latest[sub] = text
        if self.hold:
            if len(self._held) < HOLD:
                self._held.append((name, pairs, t, up))
            else:
                self._keep(name, pairs, t, up, True)
            return
        link = self.link
        if link.online() and len(self._live) < LIVE:
            refused = False
            for sub, text in pairs:
                if not link.publish(self.topics.value(sub), text):
                    refused = True  # the wrapper's outbox is full: keep the reading instead
            if self.json_doc:
                self._json_t = t  # one document per step, stamped with the measurement time
            if refused:
                self._keep(name, pairs, t, up, False)
            else:
                self._live.append([name, pairs, t, up, self.clock.ticks_add(now, within)])
            return
        # Offline (or LIVE readings still unacknowledged): this reading goes to the backlog, so
        # a document still pending from before must not go out later carrying it as live.
        self._json_t = False
        self._keep(name, pairs, t, up, True)

    def availability(self, name, on):
        """A sensor came online or went offline (retained; all sent again on connect)."""
        if self.link.online():
            text = "online" if on else "offline"
            self.link.publish(self.topics.sensor_status(name), text, True, 1)

    def _keep(self, name, pairs, t, up, durable):
        if self.store is None:
            return
        self.store.put(record(pairs, t, name, None if t is not None else up))
        if durable:
            self.store.flush()  # offline: on flash before the next reading is taken

    # ---- from the loop --------------------------------------------------------------------------
    def connected(self):
        """The first connect of a battery node's wake: its held readings go out live."""
        if not self.hold:
            return
        self.hold = False
        for name, pairs, t, up in self._held:
            for sub, text in pairs:
                self.link.publish(self.topics.value(sub), text)
            if self.json_doc:
                self.link.publish(self.topics.json, record(pairs, t, name, None if t else up))
        self._held = []

    def step(self, now, busy, replay=True):
        """Late live readings to the store; the JSON document once no sensor is
        mid-conversion; one backlog replay step."""
        link = self.link
        if self._live:
            self._watch(now)
        if not link.online():
            return
        if self._json_t is not False and not busy:
            t = self._json_t
            self._json_t = False
            allv = [(k, self.latest[k]) for k in self.latest]
            up = self.tk.uptime(now)
            link.publish(self.topics.json, record(allv, t, None, None if t else up))
        if replay:
            self._replay()

    def _watch(self, now):
        """Live readings: forget the acknowledged, take back the late (checked every step, so
        ticks never age past a wrap). Not found in the wrapper means written or in flight:
        watched until the wrapper is idle, as a lost session queues its in-flight ones again."""
        link = self.link
        if link.idle():
            self._live = []
            return
        down = not link.online()
        lv = self._live
        i = 0
        while i < len(lv):
            r = lv[i]
            if (down or self.clock.ticks_diff(now, r[4]) >= 0) and self._take_back(r):
                lv.pop(i)
            else:
                i += 1

    def _take_back(self, r):
        """Withdraw what of reading r the wrapper still holds and store it with its time;
        True once nothing of it is left out there."""
        back = []
        left = []
        for p in r[1]:
            (back if self.link.withdraw(self.topics.value(p[0]), p[1]) else left).append(p)
        if back:
            self._keep(r[0], back, r[2], r[3], True)
            self.late += 1
        r[1] = left
        return not left

    def _replay(self):
        """Backlog, pipelined: batches are handed to the wrapper while earlier ones wait for
        their acknowledgements (at most REPLAY_WINDOW records out), and a batch may leave the
        store once the wrapper holds none of its records any more (all acknowledged). Waiting
        for every ack before the next batch cost a round trip per batch: a day's backlog took
        several battery wakes."""
        st = self.store
        if st is None:
            return
        out = self._out
        if out:
            self._commit_acked(False)
        n = self._n_out  # reserved in the store: out, or acknowledged and not yet committed
        while n - self._acked < REPLAY_WINDOW and st.depth() > n:
            room = REPLAY_WINDOW - (n - self._acked)
            recs = st.peek(REPLAY_BATCH if room > REPLAY_BATCH else room)
            if not recs:
                return
            sent = 0
            for r in recs:
                # a corrupt record (None) is skipped but still counted, so commit() removes it
                if r is not None and not self.link.publish(self.topics.backlog, r, False, 1):
                    break  # the wrapper refused it (outbox full): the rest waits for next time
                sent += 1
            if sent:
                out.append(recs[:sent] if sent < len(recs) else recs)
                n += sent
                self._n_out = n
            if sent < len(recs):
                st.release(len(recs) - sent)  # reserve exactly what the wrapper took
                return

    def _unacked(self, batch):
        # newest first: acknowledgements come in order, so the last record is the likeliest
        # still out
        t = self.topics.backlog
        for i in range(len(batch) - 1, -1, -1):
            r = batch[i]
            if r is not None and self.link.holds(t, r):
                return True
        return False

    def settle(self):
        """Before a planned DISCONNECT: commit the replayed batches the wrapper has
        acknowledged."""
        if self._n_out and self.store is not None and self.link.online():
            self._commit_acked(True)

    def _commit_acked(self, now):
        """The acknowledged batches leave the flash, oldest first. Each commit rewrites the
        read position on flash (a file write and a rename), so they are gathered: committed
        once COMMIT_EVERY are acknowledged, when nothing else is out, or `now`. A power cut
        in between sends those (fewer than COMMIT_EVERY) again after the reboot, with their
        times."""
        out = self._out
        k = 0
        while out and not self._unacked(out[0]):
            k += len(out.pop(0))
        a = self._acked + k
        if a and (now or not out or a >= COMMIT_EVERY):
            self.store.commit(a)
            self._n_out -= a
            a = 0
        self._acked = a

    def save(self):
        """Before reset, deep sleep or stop: held and unsent live readings to the store, the
        store to flash."""
        for r in self._live:
            self._take_back(r)
        self._live = []
        for name, pairs, t, up in self._held:
            self._keep(name, pairs, t, up, False)
        self._held = []
        if self.store is not None:
            self.store.flush()

    def pending(self):
        """Readings not yet handed to the wrapper (held + stored)."""
        return len(self._held) + (self.store.depth() if self.store is not None else 0)

    def dropped(self):
        return self.store.dropped if self.store is not None else 0
