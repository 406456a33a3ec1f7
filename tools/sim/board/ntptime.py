"""ntptime as the firmware has it (host, timeout, time(), settime()). time() gives the world's
true time from the simulated clock; a scenario's "ntp": {"fail": [windows]} (or true) makes it
raise OSError(ETIMEDOUT) as an unreachable server would."""

import errno

import scenario
import simenv

host = "pool.ntp.org"
timeout = 1


def time():
    if scenario.ntp_fails():
        simenv.clock.sleep_us(timeout * 1000000)
        raise OSError(errno.ETIMEDOUT)
    return simenv.clock.true_us() // 1000000  # seconds since the port's epoch (1970 here)


def settime():
    t = time()
    simenv.clock.set_rtc_us(t * 1000000)
