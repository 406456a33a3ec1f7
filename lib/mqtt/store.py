"""Durable store: records kept until their consumer commits them, oldest first.

One store serves the robust wrapper (its outbox spills here) and the node (readings, backlog).
New records go to a small RAM ring; every `batch` records the ring is appended to flash in one
write (sparing the flash). The flash part is a few segment files `<path>.<n>`, append-only, one
record per line with a CRC-32 so a line torn by a power cut is recognised and skipped: a
record is either whole or ignored. The total is bounded by `max_bytes`: when it would be
exceeded the oldest segment is dropped and its unread records counted in `dropped` (never
silent; `status()` reports it). The read position is kept in `<path>.pos` (written to a temp
file, then renamed), updated when a batch is committed, so a reboot neither loses flushed
records nor replays committed ones. With `path=None` the store is the RAM ring only: when
full the oldest record goes and is counted in `dropped`.

    st = Store("spool.dat", ram=16, max_bytes=32768, batch=8)
    st.put(b'{"t":1763784000,"s":"bme280","Temp":21.5}')
    recs = st.peek(10)      # oldest first, reserved until commit()
    ...publish them...
    st.commit()             # once the broker has them
    st.flush()              # before sleep or reset: RAM ring to flash
"""

import os
from binascii import crc32

_SEGMENTS = 4  # max_bytes is split over this many segment files


def _line(rec):
    return b"%08x %s\n" % (crc32(rec) & 0xFFFFFFFF, rec)


def _parse(line):
    # -> record bytes, or None for a torn/corrupt line
    if len(line) < 10 or line[-1] != 10 or line[8] != 32:
        return None
    rec = line[9:-1]
    try:
        if int(line[:8], 16) != crc32(rec) & 0xFFFFFFFF:
            return None
    except ValueError:
        return None
    return rec


class Store:
    def __init__(self, path="spool.dat", ram=16, max_bytes=32768, batch=8):
        self.path = path  # None: RAM ring only
        self.ram_size = ram
        self.max_bytes = max_bytes
        self.seg_bytes = max(256, max_bytes // _SEGMENTS)
        self.batch = min(batch, ram)
        self._ram = []
        self.dropped = 0  # records lost to overflow (persisted in the .pos file)
        self.corrupt = 0  # torn/corrupt lines skipped on replay
        self.writes = 0  # flash append operations (for diagnostics and the bench)
        self.errors = 0  # flash write failures (records then stay in RAM)
        self._reserved = 0  # records handed out by peek() and not yet committed
        # (segment, offset, n): where the n-th reserved flash record ends, so that a peek()
        # with records already reserved reads on from there instead of from the read position
        # (a consumer with several batches out would otherwise read them all again)
        self._cur = None
        self._segs = []  # segment numbers present, ascending
        self._sizes = {}
        self._pos_seg = 0
        self._pos_off = 0
        self._count = 0  # unread records on flash (from the read position)
        if path is not None:
            d = path.rfind("/")
            self._dir = path[:d] if d >= 0 else ""
            self._base = path[d + 1 :]
            self._open()

    # -- files ---------------------------------------------------------------------------
    def _seg_path(self, n):
        return "%s.%d" % (self.path, n)

    def _open(self):
        prefix = self._base + "."
        try:
            names = os.listdir(self._dir or ".")
        except OSError:
            names = []  # no such directory: appends fail and are counted in errors
        for name in names:
            if name.startswith(prefix):
                tail = name[len(prefix) :]
                if tail.isdigit():
                    self._segs.append(int(tail))
        self._segs.sort()
        try:
            with open(self.path + ".pos") as f:
                parts = f.read().split()
            self._pos_seg, self._pos_off, self.dropped = int(parts[0]), int(parts[1]), int(parts[2])
        except (OSError, ValueError, IndexError):
            self._pos_seg, self._pos_off = (self._segs[0] if self._segs else 0), 0
        # Segments wholly before the read position were replayed: remove leftovers.
        while self._segs and self._segs[0] < self._pos_seg:
            self._remove(self._segs[0])
        if self._segs and self._segs[0] > self._pos_seg:
            self._pos_seg, self._pos_off = self._segs[0], 0
        for n in self._segs:
            self._sizes[n] = os.stat(self._seg_path(n))[6]
        self._count = self._scan_count()
        # Never append behind a torn tail: start a fresh segment instead.
        if self._segs:
            last = self._segs[-1]
            if self._sizes[last] and not self._ends_with_newline(last):
                self._segs.append(last + 1)
                self._sizes[last + 1] = 0

    def _ends_with_newline(self, n):
        try:
            with open(self._seg_path(n), "rb") as f:
                f.seek(self._sizes[n] - 1)
                return f.read(1) == b"\n"
        except OSError:
            return False

    def _scan_count(self):
        c = 0
        for n in self._segs:
            c += self._count_from(n, self._pos_off if n == self._pos_seg else 0)
        return c

    def _count_from(self, n, off):
        c = 0
        try:
            with open(self._seg_path(n), "rb") as f:
                f.seek(off)
                for line in f:
                    if line[-1] == 10:
                        c += 1
        except OSError:
            pass
        return c

    def _remove(self, n):
        try:
            os.remove(self._seg_path(n))
        except OSError:
            pass
        if n in self._segs:
            self._segs.remove(n)
        self._sizes.pop(n, None)

    def _save_pos(self):
        tmp = self.path + ".pos.tmp"
        try:
            with open(tmp, "w") as f:
                f.write("%d %d %d" % (self._pos_seg, self._pos_off, self.dropped))
            os.rename(tmp, self.path + ".pos")
        except OSError:
            self.errors += 1

    def _drop_oldest_segment(self):
        n = self._segs[0]
        lost = self._count_from(n, self._pos_off if n == self._pos_seg else 0)
        self._remove(n)
        self.dropped += lost
        self._count -= lost
        # Records reserved by peek() may have been in it: they are gone, not committable.
        self._reserved = max(0, self._reserved - lost)
        self._cur = None
        if self._segs:
            self._pos_seg, self._pos_off = self._segs[0], 0
        else:
            self._pos_seg, self._pos_off = n + 1, 0
        self._save_pos()

    def _append(self, lines):
        data = b"".join(lines)
        while self._segs and self._total() + len(data) > self.max_bytes:
            self._drop_oldest_segment()
        if not self._segs or self._sizes[self._segs[-1]] + len(data) > self.seg_bytes:
            n = self._segs[-1] + 1 if self._segs else self._pos_seg
            if not self._segs:
                self._pos_seg, self._pos_off = n, 0
            self._segs.append(n)
            self._sizes[n] = 0
            while len(self._segs) > _SEGMENTS + 1:
                self._drop_oldest_segment()
        n = self._segs[-1]
        with open(self._seg_path(n), "ab") as f:
            f.write(data)
        self._sizes[n] += len(data)
        self._count += len(lines)
        self.writes += 1

    def _total(self):
        t = 0
        for n in self._segs:
            t += self._sizes[n]
        return t

    # -- public --------------------------------------------------------------------------
    def put(self, rec):
        """Add one record (bytes or str without newline)."""
        if isinstance(rec, str):
            rec = rec.encode()
        if len(self._ram) >= self.ram_size:
            # Flash is failing (or the ring is tiny): RAM stays bounded, oldest goes.
            self._ram.pop(0)
            self.dropped += 1
            if self._reserved > self._count:
                self._reserved -= 1
                self._cur = None
        self._ram.append(rec)
        if len(self._ram) >= self.batch:
            self.flush()

    def flush(self):
        """Append the RAM ring to flash now (call before deep sleep or reset).

        True when nothing is left only in RAM; False without a path or when the write failed.
        """
        if not self._ram:
            return True
        if self.path is None:
            return False
        # Reservations count from the head (flash, then RAM); appending the ring to the flash
        # tail keeps that order, so they stay valid as they are.
        try:
            self._append([_line(r) for r in self._ram])
        except OSError:
            self.errors += 1
            return False
        self._ram = []
        return True

    def depth(self):
        """Records waiting (flash + RAM), including reserved ones."""
        return self._count + len(self._ram)

    pending = depth

    def __len__(self):
        return self._count + len(self._ram)

    def used(self):
        """Bytes on flash (segment files), the figure bounded by max_bytes."""
        return self._total()

    def status(self):
        return {
            "pending": self._count + len(self._ram),
            "bytes": self._total(),
            "max_bytes": self.max_bytes,
            "dropped": self.dropped,
            "corrupt": self.corrupt,
            "errors": self.errors,
        }

    def peek(self, n):
        """Up to n oldest records (bytes), reserved until commit(); [] when empty."""
        out = []
        skip = self._reserved
        seg, off = self._pos_seg, self._pos_off
        cur = self._cur
        base = 0  # flash records reserved before the place reading starts
        if cur is not None and cur[2] <= skip:
            seg, off, base = cur
            skip -= base
        segs = [s for s in self._segs if s >= seg]
        i = 0
        passed = 0  # flash records read past (skipped or handed out)
        at = None
        while len(out) < n and i < len(segs):
            s = segs[i]
            try:
                with open(self._seg_path(s), "rb") as f:
                    o = off if s == seg else 0
                    f.seek(o)
                    while len(out) < n:
                        line = f.readline()
                        if not line:
                            break
                        if line[-1] != 10:
                            break  # torn tail
                        o += len(line)
                        passed += 1
                        at = (s, o)
                        if skip:
                            skip -= 1
                            continue
                        rec = _parse(line)
                        # A corrupt line still occupies a slot: hand out None so commit()
                        # counts it; the caller skips Nones.
                        out.append(rec)
            except OSError:
                pass
            i += 1
        if at is not None:
            self._cur = (at[0], at[1], base + passed)
        if len(out) < n:
            for r in self._ram[skip:]:
                if len(out) >= n:
                    break
                out.append(r)
        self._reserved += len(out)
        return out

    def commit(self, n=None):
        """Remove the records handed out by peek() (the broker has them): all of them, or the
        oldest n (the rest stay reserved: a consumer with several batches out commits each
        as it is acknowledged)."""
        k = self._reserved
        if n is not None and n < k:
            k = n
        self._reserved -= k
        if k <= 0:
            return
        touched = False
        c = 0  # flash records committed
        while k and self._count:
            s = self._pos_seg
            try:
                with open(self._seg_path(s), "rb") as f:
                    f.seek(self._pos_off)
                    while k:
                        line = f.readline()
                        if not line or line[-1] != 10:
                            break
                        if _parse(line) is None:
                            self.corrupt += 1
                        self._pos_off += len(line)
                        self._count -= 1
                        k -= 1
                        c += 1
                        touched = True
            except OSError:
                pass
            if k and self._count:
                # Finished this segment: it is fully replayed.
                nxt = [x for x in self._segs if x > s]
                self._remove(s)
                if not nxt:
                    break
                self._pos_seg, self._pos_off = nxt[0], 0
        if k:
            del self._ram[:k]
        cur = self._cur
        # the cursor counts from the read position, which moved c records on
        self._cur = (cur[0], cur[1], cur[2] - c) if cur and self._reserved and cur[2] >= c else None
        # Drop a fully read segment unless it is the one being written.
        s = self._pos_seg
        if s in self._sizes and self._pos_off >= self._sizes[s] and s != self._segs[-1]:
            self._remove(s)
            self._pos_seg, self._pos_off = (self._segs[0], 0) if self._segs else (s + 1, 0)
        if not self._count and self._segs and not self._ram:
            # Everything replayed: start clean so the files do not linger.
            for s in list(self._segs):
                self._remove(s)
            self._pos_seg, self._pos_off = s + 1, 0
        if touched:
            self._save_pos()

    def release(self, n=None):
        """Forget reservations without committing (the publish did not happen): all of them,
        or the newest n."""
        self._reserved = 0 if n is None or n >= self._reserved else self._reserved - n
        self._cur = None
