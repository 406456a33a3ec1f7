# Calibration, filters and the publish gate; Magnus humidity recompute; payload formatting.
from node.filters import Chain, Calibration, recompute_rh, dew_point
from node.payload import Topics, fmt, record


def q(**kw):
    d = {"offset": 0, "scale": 1, "two_point": None, "filters": []}
    d.update(kw)
    return d


def near(a, b, eps=1e-6):
    return a is not None and abs(a - b) < eps


def test_offset_and_scale():
    c = Calibration(offset=-0.5, scale=2)
    assert near(c.apply(10), 19.5)
    assert Calibration().is_identity()


def test_two_point_maps_both_references_exactly():
    c = Calibration(two_point=[[0.5, 0.0], [99.0, 100.0]])
    assert near(c.apply(0.5), 0.0)
    assert near(c.apply(99.0), 100.0)
    assert near(c.apply(49.75), 50.0)


def test_median_rejects_single_spike():
    ch = Chain(q(filters=[{"type": "median", "size": 3}]))
    out = [ch.transform(v) for v in (20.0, 20.2, 85.0, 20.1, 20.3)]
    assert out[2] == 20.2 and out[3] == 20.2 and out[4] == 20.3, out


def test_median_even_count_at_start_averages_middle():
    ch = Chain(q(filters=[{"type": "median", "size": 5}]))
    ch.transform(1.0)
    assert near(ch.transform(2.0), 1.5)


def test_moving_average_window():
    ch = Chain(q(filters=[{"type": "average", "size": 3}]))
    r = [ch.transform(v) for v in (3.0, 6.0, 9.0, 12.0)]
    assert near(r[0], 3) and near(r[1], 4.5) and near(r[2], 6) and near(r[3], 9)


def test_ema():
    ch = Chain(q(filters=[{"type": "ema", "alpha": 0.5}]))
    assert near(ch.transform(10.0), 10.0)
    assert near(ch.transform(20.0), 15.0)
    assert near(ch.transform(20.0), 17.5)


def test_clamp_limits_or_drops():
    ch = Chain(q(filters=[{"type": "clamp", "min": 0, "max": 100, "drop": False}]))
    assert ch.transform(101.3) == 100 and ch.transform(-2) == 0 and near(ch.transform(55.5), 55.5)
    ch = Chain(q(filters=[{"type": "clamp", "min": -40, "max": 85, "drop": True}]))
    assert ch.transform(150.0) is None and ch.rejected == 1
    assert near(ch.transform(21.0), 21.0)


def test_round_to_step():
    ch = Chain(q(filters=[{"type": "round", "step": 0.5}]))
    assert near(ch.transform(21.3), 21.5) and near(ch.transform(21.2), 21.0)


def test_nan_and_inf_are_withheld():
    ch = Chain(q())
    assert ch.feed(float("nan"), 0) is None
    assert ch.feed(float("inf"), 0) is None
    assert ch.feed(None, 0) is None


def test_delta_suppresses_small_changes_heartbeat_forces():
    ch = Chain(q(filters=[{"type": "delta", "min": 0.5}, {"type": "heartbeat", "seconds": 60}]))
    assert ch.feed(20.0, 0) == 20.0
    assert ch.feed(20.3, 10) is None
    assert ch.feed(20.6, 20) == 20.6
    assert ch.feed(20.7, 30) is None
    assert ch.feed(20.7, 80) == 20.7  # heartbeat: 60 s since the last publish


def test_throttle():
    ch = Chain(q(filters=[{"type": "throttle", "seconds": 30}]))
    assert ch.feed(1.0, 0) == 1.0
    assert ch.feed(5.0, 10) is None
    assert ch.feed(6.0, 30) == 6.0


def test_filters_apply_after_calibration_in_order():
    ch = Chain(
        q(
            offset=1.0,
            filters=[{"type": "clamp", "max": 10, "drop": False}, {"type": "round", "step": 1}],
        )
    )
    assert ch.transform(9.6) == 10  # 10.6 clamped to 10
    assert ch.transform(3.2) == 4


def test_magnus_recompute_keeps_vapour_pressure():
    # A sensor at 25.0 degC reading 40 %RH, truly 22.0 degC: RH rises.
    rh = recompute_rh(40.0, 25.0, 22.0)
    assert 47.5 < rh < 48.5, rh
    # Dew point unchanged by the correction (same absolute humidity).
    assert abs(dew_point(25.0, 40.0) - dew_point(22.0, rh)) < 0.01
    assert recompute_rh(40.0, 22.0, 22.0) == 40.0
    assert recompute_rh(95.0, 30.0, 10.0) == 100.0


def test_fmt_decimals_and_refusals():
    assert fmt(21.46, 1) == "21.5"
    assert fmt(21.44, 1) == "21.4"
    assert fmt(45.6, 0) == "46"
    assert fmt(-0.04, 1) == "0.0"
    assert fmt(-3.25, 2) == "-3.25"
    assert fmt(1013.25, 1) in ("1013.2", "1013.3")
    assert fmt(float("nan"), 1) is None
    assert fmt(float("inf"), 1) is None
    assert fmt(None, 1) is None


def test_topics():
    t = Topics("Erdgeschoss/Wohnzimmer")
    assert t.value("Temp") == "Erdgeschoss/Wohnzimmer/Temp"
    assert t.status == "Erdgeschoss/Wohnzimmer/status"
    assert t.sensor_status("bme280") == "Erdgeschoss/Wohnzimmer/status/bme280"
    assert t.backlog == "Erdgeschoss/Wohnzimmer/backlog"


def test_record_json():
    import json

    r = record([("Temp", "21.5"), ("Hum", "45")], 1763784000, "bme280")
    assert r == '{"t":1763784000,"s":"bme280","Temp":21.5,"Hum":45}'
    d = json.loads(record([("Temp", "21.5")], None, None, up=12))
    assert d == {"t": None, "unsynced": True, "up": 12, "Temp": 21.5}
