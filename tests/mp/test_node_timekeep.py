# Timestamps: Unix seconds on both epochs, None until NTP succeeded, bounded retry spacing.
from node.timekeep import EPOCH_2000, Timekeeper, epoch_offset


class Clock2000:
    """An embedded port's time: seconds since 2000-01-01, ticks in ms."""

    def __init__(self):
        self.ms = 0
        self.secs = 0

    def ticks_ms(self):
        return self.ms

    def ticks_add(self, a, b):
        return a + b

    def ticks_diff(self, a, b):
        return a - b

    def time(self):
        return self.secs

    def gmtime(self, s=0):
        return (2000, 1, 1, 0, 0, 0, 5, 1) if s == 0 else None


class NTP:
    def __init__(self, clock, fails=0):
        self.clock = clock
        self.fails = fails
        self.calls = []
        self.host = None

    def settime(self):
        self.calls.append(self.clock.ms)
        if self.fails:
            self.fails -= 1
            raise OSError(110)
        self.clock.secs = 1763784000 - EPOCH_2000  # what ntptime sets on an ESP32


def test_unix_time_corrected_for_the_2000_epoch():
    c = Clock2000()
    assert epoch_offset(c) == EPOCH_2000
    tk = Timekeeper("pool.ntp.org", 3, 3600, c, NTP(c))
    assert tk.unix() is None  # unsynced: no made-up time
    tk.step(0, True)
    assert tk.synced and tk.unix() == 1763784000


def test_unix_port_epoch_is_1970():
    import time

    assert epoch_offset(time) in (0, EPOCH_2000)
    assert epoch_offset(time) == (EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0)


def test_retries_spaced_then_slow_and_only_with_wifi():
    c = Clock2000()
    ntp = NTP(c, fails=4)
    tk = Timekeeper("pool.ntp.org", 3, 3600, c, ntp)
    assert tk.step(0, False) is False and ntp.calls == []  # no WiFi: no attempt
    for _ in range(400000 // 500):
        tk.step(c.ms, True)
        c.ms += 500
    # 2, 4, 8 s after the first failures, then every 5 minutes
    assert ntp.calls[:4] == [0, 2000, 6000, 14000], ntp.calls
    assert ntp.calls[4] == 314000 and tk.synced
    assert ntp.host == "pool.ntp.org"


def test_no_server_means_never_synced():
    c = Clock2000()
    tk = Timekeeper(None, 3, 3600, c, NTP(c))
    tk.step(0, True)
    assert not tk.synced and tk.unix() is None


def _console():
    from node import log

    log.ring.clear()
    log._state.clear()  # module state outlives one test's objects
    return log


def test_console_says_failure_and_reason_once_then_synced_once():
    log = _console()
    c = Clock2000()
    ntp = NTP(c, fails=3)
    tk = Timekeeper("pool.ntp.org", 3, 60, c, ntp)
    for _ in range(200):  # 100 s: three failures, the sync, and re-syncs every 60 s
        tk.step(c.ms, True)
        c.ms += 500
    assert len(ntp.calls) >= 5 and tk.synced  # re-synced at least once more
    lines = [x.split(" ", 1)[1] for x in log.ring]
    assert lines == [
        "ntp: no time from pool.ntp.org: no answer within 1 s (UDP 123 blocked, or server down?)",
        "ntp: synced with pool.ntp.org",
    ], lines
    assert log.ring[0].startswith("+")  # before the sync: seconds since boot
    assert log.ring[1].startswith("1763784000 ")  # after: Unix seconds


class DNSFail:
    host = None

    def settime(self):
        raise OSError(-202)  # what getaddrinfo raises on an ESP32 for an unknown name


def test_console_says_when_the_server_name_does_not_resolve():
    log = _console()
    c = Clock2000()
    tk = Timekeeper("ntp.example.invalid", 3, 60, c, DNSFail())
    tk.step(0, True)
    assert log.ring[-1].endswith(
        "ntp: no time from ntp.example.invalid: cannot resolve the name (DNS)"
    )


def test_console_says_a_lost_sync_and_its_return():
    log = _console()
    c = Clock2000()
    ntp = NTP(c)
    tk = Timekeeper("pool.ntp.org", 3, 60, c, ntp)
    tk.step(0, True)
    ntp.fails = 1
    c.ms = 60000
    tk.step(c.ms, True)  # the re-sync fails
    c.ms = 62000
    tk.step(c.ms, True)  # and works again 2 s later
    lines = [x.split(" ", 1)[1] for x in log.ring]
    assert lines[0] == "ntp: synced with pool.ntp.org" and lines[-1] == lines[0], lines
    assert "no answer" in lines[1] and len(lines) == 3, lines
