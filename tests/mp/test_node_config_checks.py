# What users get wrong in config.json, caught the same way on the host and on the device:
# hex I2C addresses, board names, strict JSON with line and column, secrets hints, TLS
# without a CA, topics and file names, what set_config may change over MQTT.
import json

from node import cfgfile, config
from test_node_config import base


def _msgs(d):
    return config.validate(d)


def _one(d, prefix):
    m = [x for x in _msgs(d) if x.startswith(prefix)]
    assert m, (prefix, _msgs(d))
    return m[0]


def test_decimal_looking_i2c_address_refused_with_hex_hint():
    d = base()
    d["sensors"][0]["address"] = "76"
    m = _one(d, "sensors[0].address")
    assert 'did you mean "0x76"?' in m, m
    d["sensors"][0]["address"] = "118"
    assert "118, or 0x76" in _one(d, "sensors[0].address")
    d["sensors"][0]["address"] = 0x76
    assert not _msgs(d)


def test_unknown_board_refused_with_list_and_closest():
    d = base()
    d["board"] = "esp32-c3-super-mini"
    m = _one(d, "board:")
    assert "esp32-devkitc" in m and 'did you mean "esp32-c3-supermini"?' in m, m
    d["board"] = "esp32"
    assert 'did you mean "esp32-devkitc"?' in _one(d, "board:")
    assert not config.validate(d, boards=[])  # no board files known: nothing to compare with


def test_strict_json_reports_line_and_column():
    cases = [
        (b'{"a": 1,\n}', 'line 1 column 8: a comma before "}"'),
        (b'{"a": 1\n "b": 2}', 'line 2 column 2: expected "," or "}"'),
        (b'{"a" 1}', 'line 1 column 6: expected ":"'),
        (b'{"a": [1, 2,]}', 'line 1 column 12: a comma before "]"'),
        (b"{'a': 1}", "line 1 column 2"),
        (b'{"a": NaN}', "line 1 column 7"),
        (b'{"a": 01}', "line 1 column 7"),
        (b"null", "expected a JSON object"),
        (b"[1]", "expected a JSON object"),
    ]
    for data, want in cases:
        doc, err = cfgfile.parse_json(data)
        assert doc is None and want in err, (data, err)
    doc, err = cfgfile.parse_json(b' {"a": [1, -2.5e3, true, null, "x\\u00fc\\n"], "b": {}} ')
    assert err is None and doc["a"][4] == "x\u00fc\n", err


def test_load_refuses_a_trailing_comma_the_device_json_would_accept():
    import tmpdir

    d = tmpdir.fresh_dir("cfgchk")
    text = json.dumps(base())
    with open(d + "/c.json", "w") as f:
        f.write(text[:-1] + ",}")
    cfg, source, problems = config.load(d + "/c.json", None, None)
    assert cfg is None and "a comma before" in problems[0], problems


def test_missing_passwords_point_at_secrets_json():
    d = base()
    del d["wifi"]
    assert "secrets.json" in _one(d, "wifi:")
    d = base()
    d["wifi"] = [{"ssid": "home"}]
    assert "secrets.json" in _one(d, "wifi[0].password")
    d = base()
    d["mqtt"]["user"] = "node"
    d["mqtt"].pop("password", None)
    assert "secrets.json" in _one(d, "mqtt.password")


def test_tls_needs_ca_or_explicit_insecure_opt_out():
    d = base()
    d["mqtt"]["tls"] = True
    assert "tls_insecure" in _one(d, "mqtt.ca")
    d["mqtt"]["tls_insecure"] = True
    assert not _msgs(d)
    assert config.normalize(d)["mqtt"]["tls_insecure"] is True
    d["mqtt"]["tls"] = False
    _one(d, "mqtt.tls_insecure")


def test_topics_refuse_surrogates_wildcards_nul():
    for t in ("a/\ud800", "a/+", "a/#", "a\x00b", "a/\x01"):
        d = base()
        d["topic"] = t
        _one(d, "topic:")
    doc, err = cfgfile.parse_json(b'{"topic": "a/\\ud800"}')
    d = base()
    d["topic"] = doc["topic"]
    _one(d, "topic:")


def test_file_settings_stay_in_the_node_folder():
    for p in ("../x", "/spool.dat", "a/../../b", "C:spool", "a\\b", ""):
        d = base()
        d["spool"] = {"file": p}
        _one(d, "spool.file")
        d = base()
        d["mqtt"]["tls"] = True
        d["mqtt"]["ca"] = p
        _one(d, "mqtt.ca")
    d = base()
    d["spool"] = {"file": "data/spool.dat"}
    assert not _msgs(d)


def test_remote_change_problems_lists_local_only_settings():
    old = base()
    assert config.remote_change_problems(old, base()) == []
    new = base()
    new["interval"] = 30
    new["sensors"][0]["interval"] = 10
    assert config.remote_change_problems(old, new) == []
    for path, value in (
        ("mqtt.host", "evil"),
        ("mqtt.port", 1884),
        ("mqtt.user", "x"),
        ("mqtt.password", "y" * 9),
        ("mqtt.tls", True),
        ("mqtt.ca", "x.pem"),
        ("mqtt.tls_insecure", True),
        ("mqtt.client_id", "abc"),
        ("wifi", [{"ssid": "evil", "password": "12345678"}]),
        ("commands", {"enabled": False}),
        ("spool.file", "other.dat"),
    ):
        new = base()
        k = path.split(".")
        if len(k) == 1:
            new[k[0]] = value
        else:
            new.setdefault(k[0], {})[k[1]] = value
        got = config.remote_change_problems(old, new)
        assert len(got) == 1 and got[0].startswith(path + ":"), (path, got)
    new = base()
    new["mqtt"] = "x"
    assert config.remote_change_problems(old, new) == [
        "mqtt: cannot be changed over MQTT (connection and security settings change by deploy)"
    ]


def test_a_small_config_reads_where_no_room_is_left_for_the_largest_one():
    # A tight heap at boot must not turn a 1 KB config.json into "too big to read" (and the
    # node into safe mode): reading takes about the file's size, not MAX_BYTES at once.
    import gc

    import tmpdir
    from node import jsoncheck  # noqa: F401 - loaded first: its code is not what is measured

    p = tmpdir.fresh_dir("cfgsmall") + "/config.json"
    with open(p, "w") as f:
        json.dump(base(), f)
    gc.collect()
    hog = []
    try:
        while gc.mem_free() > cfgfile.MAX_BYTES * 3 // 4:
            hog.append(bytearray(512))
    except MemoryError:
        pass
    doc, err = cfgfile.read_json(p)
    n = gc.mem_free()
    del hog
    assert err is None and doc == base(), (err, n)
