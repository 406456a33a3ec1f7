"""Calibration and filters for one quantity, built from its normalized config entry.

A raw reading goes through calibration (two-point line or scale, then offset), then the
transforming filters in the order listed (median, average, ema, clamp, round), and finally the
gate (delta, throttle, heartbeat) decides whether the value is published now. A reading a
filter rejects (clamp with drop) is withheld, never replaced by a stale number.

    ch = Chain({"offset": -0.4, "scale": 1, "two_point": None,
                "filters": [{"type": "median", "size": 5}, {"type": "delta", "min": 0.1}]})
    v = ch.feed(21.73, now_s)     # the calibrated value to publish, or None to withhold
"""

import math

# Magnus formula over water (Sonntag 1990): es(T) = 6.112 hPa * exp(A*T / (B+T)), T in degC.
_A = 17.62
_B = 243.12


def _magnus_exp(t):
    return _A * t / (_B + t)


def recompute_rh(rh, t_measured, t_true):
    """Relative humidity at the true temperature for the same absolute humidity.

    A sensor warmed by its own board reads T too high and RH too low; after correcting T
    with an offset, RH must be recomputed with the vapour pressure kept, not left as read.
    """
    rh = rh * math.exp(_magnus_exp(t_measured) - _magnus_exp(t_true))
    if rh < 0:
        return 0.0
    if rh > 100:
        return 100.0
    return rh


def dew_point(t, rh):
    """Dew point in degC from temperature (degC) and relative humidity (%), Magnus."""
    if rh <= 0:
        return None
    g = math.log(rh / 100.0) + _magnus_exp(t)
    return _B * g / (_A - g)


class Calibration:
    """v -> two-point line (if set) or v * scale, then + offset."""

    def __init__(self, offset=0, scale=1, two_point=None):
        self.set(offset, scale, two_point)

    def set(self, offset=0, scale=1, two_point=None):
        self.offset = offset
        self.scale = scale
        if two_point:
            (r1, t1), (r2, t2) = two_point
            self._k = (t2 - t1) / (r2 - r1)
            self._d = t1 - r1 * self._k
        else:
            self._k = scale
            self._d = 0
        self.two_point = two_point

    def apply(self, v):
        return v * self._k + self._d + self.offset

    def is_identity(self):
        return self._k == 1 and self._d == 0 and self.offset == 0


class _Window:
    # Fixed-size ring allocated once; no list growth per sample.
    def __init__(self, size):
        self.buf = [0.0] * size
        self.n = 0
        self.i = 0

    def push(self, v):
        self.buf[self.i] = v
        self.i = (self.i + 1) % len(self.buf)
        if self.n < len(self.buf):
            self.n += 1


class Chain:
    """Calibration + filters + publish gate for one quantity."""

    def __init__(self, q):
        self.cal = Calibration(q.get("offset", 0), q.get("scale", 1), q.get("two_point"))
        self._steps = []
        self._delta = None
        self._throttle = None
        self._heartbeat = None
        for f in q.get("filters", ()):
            t = f["type"]
            if t == "median" or t == "average":
                self._steps.append((t, _Window(f["size"])))
            elif t == "ema":
                self._steps.append((t, [f["alpha"], None]))
            elif t == "clamp":
                self._steps.append((t, (f.get("min"), f.get("max"), f.get("drop", False))))
            elif t == "round":
                self._steps.append((t, f["step"]))
            elif t == "delta":
                self._delta = f["min"]
            elif t == "throttle":
                self._throttle = f["seconds"]
            elif t == "heartbeat":
                self._heartbeat = f["seconds"]
        self.last_value = None  # last value published
        self.last_time = None  # when (seconds, caller's clock)
        self.rejected = 0

    def reset(self):
        for t, st in self._steps:
            if t == "median" or t == "average":
                st.n = st.i = 0
            elif t == "ema":
                st[1] = None
        self.last_value = self.last_time = None

    def transform(self, v):
        """Calibrate and run the transforming filters; None when the reading is rejected."""
        # v - v is 0 for every finite number and nan for nan and +-inf. (Not `math.inf`: a
        # frozen build cannot hold an inf constant, the C it generates does not compile.)
        if v is None or v - v != 0:
            return None
        v = self.cal.apply(v)
        for t, st in self._steps:
            if t == "median":
                st.push(v)
                s = sorted(st.buf[: st.n])
                v = s[st.n // 2] if st.n % 2 else (s[st.n // 2 - 1] + s[st.n // 2]) / 2
            elif t == "average":
                st.push(v)
                v = sum(st.buf[: st.n]) / st.n
            elif t == "ema":
                st[1] = v if st[1] is None else st[0] * v + (1 - st[0]) * st[1]
                v = st[1]
            elif t == "clamp":
                lo, hi, drop = st
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    if drop:
                        self.rejected += 1
                        return None
                    v = lo if (lo is not None and v < lo) else hi
            elif t == "round":
                v = round(v / st) * st
        return v

    def gate(self, v, now):
        """True when `v` should be published at `now` (seconds); records it if so."""
        lt = self.last_time
        hb, thr, dl = self._heartbeat, self._throttle, self._delta
        if lt is None or (hb is not None and now - lt >= hb):
            ok = True  # first value, or the heartbeat is due whatever the others say
        elif thr is not None and now - lt < thr or dl is not None and abs(v - self.last_value) < dl:
            ok = False
        else:
            ok = True
        if ok:
            self.last_value = v
            self.last_time = now
        return ok

    def feed(self, v, now):
        """Transform and gate: the value to publish now, or None."""
        v = self.transform(v)
        if v is None or not self.gate(v, now):
            return None
        return v
