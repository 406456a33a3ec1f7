# Config schema: every problem reported with its JSON path and the expected form.
# ruff: noqa: E501 - the exact messages are the spec; they stay whole on one line
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import json
import os

from node import config


def _uid():
    # a per-process number: tests may run in parallel
    return int.from_bytes(os.urandom(4), "little")


def base():
    return {
        "version": 1,
        "board": "esp32-devkitc",
        "topic": "Erdgeschoss/Wohnzimmer",
        "wifi": [{"ssid": "home", "password": "secret123"}],
        "mqtt": {"host": "192.168.1.10"},
        "sensors": [
            {"type": "bme280", "address": "0x76"},
            {
                "type": "ds18b20",
                "name": "outside",
                "pin": 4,
                "quantities": {"temperature": {"topic": "Aussen"}},
            },
        ],
    }


def with_(path, value):
    d = base()
    cur = d
    keys = path.split(".")
    for k in keys[:-1]:
        if k.endswith("]"):
            name, idx = k[:-1].split("[")
            cur = cur[name][int(idx)]
        else:
            cur = cur.setdefault(k, {})
    last = keys[-1]
    if value is _DEL:
        del cur[last]
    elif last.endswith("]"):
        name, idx = last[:-1].split("[")
        cur[name][int(idx)] = value
    else:
        cur[last] = value
    return d


_DEL = object()

# (change path, value, exact list of messages)
CASES = [
    ("version", 2, ["version: expected the schema version 1, got 2"]),
    ("version", _DEL, ["version: missing, expected the schema version 1"]),
    (
        "board",
        "ESP 32",
        ['board: expected a board name from boards/ like "esp32-devkitc", got "ESP 32"'],
    ),
    ("board", _DEL, ['board: missing, expected a board name from boards/ like "esp32-devkitc"']),
    (
        "board",
        "esp32-c3-super-mini",
        [
            'board: unknown board "esp32-c3-super-mini" (known: esp32-c3-supermini, esp32-devkitc, esp32-s3-devkitc, lolin-d32, sim); did you mean "esp32-c3-supermini"?'
        ],
    ),
    (
        "board",
        "esp32",
        [
            'board: unknown board "esp32" (known: esp32-c3-supermini, esp32-devkitc, esp32-s3-devkitc, lolin-d32, sim); did you mean "esp32-devkitc"?'
        ],
    ),
    (
        "sensors[0].address",
        "76",
        [
            'sensors[0].address: expected an I2C address like "0x76" (did you mean "0x76"?'
            ' i2cdetect prints hex without 0x), got "76"'
        ],
    ),
    (
        "sensors[0].address",
        "3c",
        [
            'sensors[0].address: expected an I2C address like "0x76" (did you mean "0x3c"?'
            ' i2cdetect prints hex without 0x), got "3c"'
        ],
    ),
    (
        "topic",
        "a/#",
        [
            'topic: expected a base topic like "Erdgeschoss/Wohnzimmer" (no +, #, $, leading or trailing /), got "a/#"'
        ],
    ),
    (
        "topic",
        "/Erdgeschoss",
        [
            'topic: expected a base topic like "Erdgeschoss/Wohnzimmer" (no +, #, $, leading or trailing /), got "/Erdgeschoss"'
        ],
    ),
    (
        "topic",
        _DEL,
        [
            'topic: missing, expected a base topic like "Erdgeschoss/Wohnzimmer" (no +, #, $, leading or trailing /)'
        ],
    ),
    ("interval", 0, ["interval: expected an integer 1..86400, got 0"]),
    ("interval", "60", ['interval: expected an integer 1..86400, got "60"']),
    ("json", "yes", ['json: expected true or false, got "yes"']),
    (
        "wifi",
        [],
        ['wifi: expected a list of networks like [{"ssid": "home", "password": "..."}], got []'],
    ),
    (
        "wifi",
        _DEL,
        [
            'wifi: missing, expected a list of networks like [{"ssid": "home", "password": "..."}]'
            " (WiFi and broker passwords usually live in secrets.json next to config.json)"
        ],
    ),
    (
        "wifi[0].password",
        "short",
        [
            'wifi[0].password: expected a WPA password of 8..63 characters (or "" for an open network), got <5 characters>'
        ],
    ),
    ("wifi[0].ssid", _DEL, ["wifi[0].ssid: missing, expected the network name, 1..32 characters"]),
    ("mqtt.port", "abc", ['mqtt.port: expected an integer 1..65535, got "abc"']),
    ("mqtt.port", 70000, ["mqtt.port: expected an integer 1..65535, got 70000"]),
    (
        "mqtt.host",
        _DEL,
        ['mqtt.host: missing, expected a broker host name or IP address like "192.168.1.10"'],
    ),
    (
        "mqtt.host",
        "mqtt://broker",
        [
            'mqtt.host: expected a broker host name or IP address like "192.168.1.10", got "mqtt://broker"'
        ],
    ),
    ("mqtt.keepalive", 0, ["mqtt.keepalive: expected an integer 5..3600, got 0"]),
    ("mqtt.qos", 2, ["mqtt.qos: expected 0 or 1, got 2"]),
    ("mqtt.tls", "on", ['mqtt.tls: expected true or false, got "on"']),
    (
        "mqtt.client_id",
        "my node!",
        [
            'mqtt.client_id: expected 1..23 characters a-z, A-Z, 0-9, _ or - (or leave it out for one from the MAC), got "my node!"'
        ],
    ),
    ("mqtt.password", "pw", ["mqtt.user: missing, expected a user name when a password is given"]),
    (
        "mqtt.user",
        "node",
        [
            "mqtt.password: missing, expected the broker password for mqtt.user (WiFi and broker"
            " passwords usually live in secrets.json next to config.json)"
        ],
    ),
    ("mqtt.ca", "ca.pem", ["mqtt.ca: only used with TLS; set mqtt.tls to true"]),
    (
        "mqtt.hots",
        "x",
        [
            "mqtt.hots: unknown key (allowed: host, port, user, password, tls, ca, tls_insecure, keepalive, client_id, qos)"
        ],
    ),
    (
        "sensors[0].address",
        "76x",
        ['sensors[0].address: expected an I2C address like "0x76", got "76x"'],
    ),
    (
        "sensors[0].address",
        "0x80",
        ['sensors[0].address: expected an I2C address like "0x76", got "0x80"'],
    ),
    (
        "sensors[0].type",
        "bme281",
        [
            'sensors[0].type: expected a sensor type (adc, aht20, bh1750, bme280, bmp280, dht22, digital, ds18b20, pulse, sht3x, sht4x), got "bme281"'
        ],
    ),
    (
        "sensors[0].type",
        _DEL,
        [
            "sensors[0].type: missing, expected a sensor type (adc, aht20, bh1750, bme280, bmp280, dht22, digital, ds18b20, pulse, sht3x, sht4x)"
        ],
    ),
    ("sensors[0].interval", -5, ["sensors[0].interval: expected an integer 1..86400, got -5"]),
    (
        "sensors[0].name",
        "Wohn zimmer",
        [
            'sensors[0].name: expected a name of 1..32 characters a-z, 0-9, _ or - like "bme280", got "Wohn zimmer"'
        ],
    ),
    (
        "sensors[1].name",
        "bme280",
        [
            'sensors[1].name: expected a name not used by another sensor (give each sensor a name), got "bme280"'
        ],
    ),
    ("sensors[1].pin", _DEL, ["sensors[1].pin: missing, expected a GPIO number like 4"]),
    ("sensors[1].pin", 99, ["sensors[1].pin: expected a GPIO number 0..48, got 99"]),
    (
        "sensors[1].rom",
        "28ff",
        [
            'sensors[1].rom: expected a 1-Wire ROM id of 16 hex digits like "28ff4a1b6c16030a", got "28ff"'
        ],
    ),
    (
        "sensors[1].address",
        "0x76",
        ["sensors[1].address: not used by ds18b20; it is wired to a pin"],
    ),
    ("sensors[0].pin", 4, ["sensors[0].pin: not used by bme280 (an I2C sensor); use address"]),
    (
        "sensors[0].quantities",
        {"lux": {}},
        [
            'sensors[0].quantities.lux: expected a quantity of bme280 (temperature, humidity, pressure), got "lux"'
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"decimals": 9}},
        ["sensors[0].quantities.temperature.decimals: expected an integer 0..6, got 9"],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"topic": "Temp/#"}},
        [
            'sensors[0].quantities.temperature.topic: expected a subtopic like "Temp" (no +, #, leading or trailing /), got "Temp/#"'
        ],
    ),
    (
        "sensors[0].quantities",
        {"humidity": {"topic": "Aussen"}},
        [
            'sensors[1].quantities.temperature.topic: expected a subtopic not used by sensors[0].quantities.humidity, got "Aussen"'
        ],
    ),
    (
        "sensors[0].quantities",
        {"pressure": {"topic": "status"}},
        [
            'sensors[0].quantities.pressure.topic: expected a subtopic not starting with one of status, json, backlog, cmd, result, diag, info, got "status"'
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"scale": 0}},
        ["sensors[0].quantities.temperature.scale: expected a non-zero number, got 0"],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"offset": "-0.5"}},
        ['sensors[0].quantities.temperature.offset: expected a number, got "-0.5"'],
    ),
    (
        "sensors[0].quantities",
        {"humidity": {"two_point": [[10, 11], [10, 90]]}},
        [
            "sensors[0].quantities.humidity.two_point: expected two [raw, true] pairs like [[0.3, 0.0], [99.1, 100.0]] with different raw values, got [[10, 11], [10, 90]]"
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "median", "size": 4}]}},
        ["sensors[0].quantities.temperature.filters[0].size: expected an odd integer 3..15, got 4"],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "kalman"}]}},
        [
            'sensors[0].quantities.temperature.filters[0].type: expected one of median, average, ema, delta, throttle, heartbeat, clamp, round, got "kalman"'
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "ema", "alpha": 1.5}]}},
        [
            "sensors[0].quantities.temperature.filters[0].alpha: expected a number greater than 0 and at most 1, got 1.5"
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "delta"}]}},
        [
            "sensors[0].quantities.temperature.filters[0].min: missing, expected the smallest change worth publishing, a number > 0"
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "clamp", "min": 50, "max": -40}]}},
        [
            "sensors[0].quantities.temperature.filters[0].max: expected a number >= min (50), got -40"
        ],
    ),
    (
        "sensors[0].quantities",
        {"temperature": {"filters": [{"type": "throttle", "secs": 5}]}},
        [
            "sensors[0].quantities.temperature.filters[0].secs: unknown key (allowed: type, seconds)",
            "sensors[0].quantities.temperature.filters[0].seconds: missing, expected an integer 1..86400",
        ],
    ),
    (
        "sensors",
        {"type": "bme280"},
        [
            'sensors: expected a list of sensors like [{"type": "bme280", "address": "0x76"}], got {"type": "bme280"}'
        ],
    ),
    (
        "discovery.prefix",
        "home/#",
        ['discovery.prefix: expected a topic prefix like "homeassistant", got "home/#"'],
    ),
    ("deep_sleep.awake_cap", 1, ["deep_sleep.awake_cap: expected an integer 5..600, got 1"]),
    ("spool.max_bytes", 10, ["spool.max_bytes: expected an integer 1024..1048576, got 10"]),
    ("safe_mode.bad_boots", 0, ["safe_mode.bad_boots: expected an integer 1..20, got 0"]),
    ("time.retries", 99, ["time.retries: expected an integer 0..10, got 99"]),
    ("commands.max_bytes", 1, ["commands.max_bytes: expected an integer 64..8192, got 1"]),
    (
        "colour",
        "red",
        [
            "colour: unknown key (allowed: version, board, name, topic, area, interval, json, wifi, mqtt, sensors, discovery, deep_sleep, spool, diag, safe_mode, time, commands, status_led, $schema, comment)"
        ],
    ),
]


def test_base_config_is_valid():
    assert config.validate(base()) == []


def test_at_least_30_invalid_configs_give_exact_messages():
    assert len(CASES) >= 30
    bad = []
    for path, value, want in CASES:
        got = config.validate(with_(path, value))
        if got != want:
            bad.append("%s=%r:\n  got  %r\n  want %r" % (path, value, got, want))
    assert not bad, "\n".join(bad)


def test_every_problem_reported_not_just_the_first():
    d = base()
    d["mqtt"]["port"] = "abc"
    d["sensors"][0]["address"] = "76x"
    d["interval"] = 0
    msgs = config.validate(d)
    assert len(msgs) == 3, msgs
    assert 'sensors[0].address: expected an I2C address like "0x76", got "76x"' in msgs


def test_not_an_object():
    assert config.validate([1]) == ["(top): expected a JSON object {...}, got [1]"]


def test_normalize_fills_defaults_and_parses_address():
    c = config.normalize(base())
    assert c["mqtt"]["port"] == 1883 and c["mqtt"]["keepalive"] == 60 and c["mqtt"]["qos"] == 1
    assert c["mqtt"]["client_id"] is None  # the app derives it from the MAC
    s = c["sensors"][0]
    assert s["address"] == 0x76 and s["interval"] == 60 and s["name"] == "bme280"
    assert s["quantities"]["temperature"]["topic"] == "Temp"
    assert s["quantities"]["humidity"]["topic"] == "Hum"
    assert s["quantities"]["pressure"]["topic"] == "Press"
    assert c["sensors"][1]["quantities"]["temperature"]["topic"] == "Aussen"
    assert c["area"] == "Wohnzimmer" and c["name"] == "Wohnzimmer"
    d = base()
    d["mqtt"]["tls"] = True
    d["mqtt"]["ca"] = "ca.pem"
    assert config.normalize(d)["mqtt"]["port"] == 8883


def test_i2c_address_forms():
    assert config.parse_i2c_address("0x76") == 0x76
    assert config.parse_i2c_address("0X77") == 0x77
    assert config.parse_i2c_address(118) == 0x76
    # a decimal string is what i2cdetect's hex looks like without "0x": refused
    for bad in ("118", "76", "76x", "0x", "0x07", 0x78, True, None, 1.5, "0xZZ"):
        assert config.parse_i2c_address(bad) is None, bad


def test_built_in_board_names_are_the_board_files_and_board_py():
    # the validator's fallback list, boardfile.py's built-in pins and boards/*.json name the same
    from node import boardfile

    assert sorted(config.BOARDS) == sorted(boardfile.BUILTIN)
    try:
        files = sorted(f[:-5] for f in os.listdir("../../boards") if f.endswith(".json"))
    except OSError:
        files = None
    if files is not None:
        assert sorted(config.BOARDS) == files, files


def _write(path, doc):
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))


def _tmpdir():
    d = "/tmp/node_cfg_%d" % _uid()
    try:
        os.mkdir(d)
    except OSError:
        pass
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    return d


def test_secrets_are_merged_over_config():
    d = _tmpdir()
    doc = base()
    del doc["wifi"]
    doc["mqtt"]["user"] = "node"
    _write(d + "/config.json", doc)
    _write(
        d + "/secrets.json",
        {"wifi": [{"ssid": "home", "password": "longenough"}], "mqtt": {"password": "pw"}},
    )
    cfg, src, problems = config.load(d + "/config.json", d + "/secrets.json", d + "/lg.json")
    assert problems == [] and src == "config"
    assert cfg["mqtt"]["host"] == "192.168.1.10" and cfg["mqtt"]["password"] == "pw"
    assert cfg["wifi"][0]["password"] == "longenough"


def test_invalid_config_falls_back_to_last_good():
    d = _tmpdir()
    good = base()
    config.keep_good(good, d + "/lg.json")
    bad = base()
    bad["mqtt"]["port"] = "abc"
    _write(d + "/config.json", bad)
    cfg, src, problems = config.load(d + "/config.json", d + "/none.json", d + "/lg.json")
    assert src == "lastgood" and cfg["mqtt"]["port"] == 1883
    assert problems == ['mqtt.port: expected an integer 1..65535, got "abc"']


def test_broken_json_without_last_good_gives_none_and_a_message():
    d = _tmpdir()
    _write(d + "/config.json", '{"version": 1,')
    cfg, src, problems = config.load(d + "/config.json", None, d + "/lg.json")
    assert cfg is None and src is None
    assert problems == [
        d + "/config.json: not valid JSON: line 1 column 15: the text ends where a key was expected"
    ]


def test_json_the_device_would_accept_is_refused_with_line_and_column():
    # MicroPython's json reads all three of these; CPython (and config-check) refuses them.
    good = '{\n  "version": 1,\n  "board": "esp32-devkitc",\n  "interval": 60\n}'
    cases = [
        (
            good.replace("60", "60,"),
            'not valid JSON: line 4 column 17: a comma before "}" (remove it)',
        ),
        (
            good.replace("1,", "1"),
            'not valid JSON: line 3 column 3: expected "," or "}" (a missing comma?)',
        ),
        (
            good.replace('"board":', '"board"'),
            'not valid JSON: line 3 column 11: expected ":" after the key (a missing colon?)',
        ),
    ]
    d = _tmpdir()
    for text, where in cases:
        _write(d + "/config.json", text)
        cfg, src, problems = config.load(d + "/config.json", None, d + "/lg.json")
        assert cfg is None and problems == [d + "/config.json: " + where], problems


def test_strict_json_check_follows_the_grammar():
    from node.jsoncheck import check

    ok = [
        '{"a": [1, -0.5, 2e3, 1E-2, 0], "b": {"c": null}, "d": true, "e": false}',
        r'"K\u00fcche \\ \n \/"',
        " [ ] ",
        '{"K\u00fcche": "\u00fc"}',
    ]
    for t in ok:
        assert check(t) is None, t
    bad = [
        ("[1,]", 'line 1 column 3: a comma before "]" (remove it)'),
        ("[1 2]", 'line 1 column 4: expected "," or "]" (a missing comma?)'),
        ("{'a': 1}", 'line 1 column 2: expected a key in double quotes like "name"'),
        (
            '{"a": 01}',
            "line 1 column 7: a number with a leading zero (JSON has no octal; write it without the 0)",
        ),
        ('{"a": 1.}', "line 1 column 9: expected digits after the decimal point"),
        ('{"a": 1} x', "line 1 column 10: more text after the end of the JSON value"),
        (
            '{"a": "x\ty"}',
            "line 1 column 9: a line break or tab inside a string (write \\n or \\t)",
        ),
        (
            '{"a": "x\\q"}',
            "line 1 column 9: unknown escape in a string (write \\\\ for a backslash)",
        ),
        ('{"\u00fc": 1 2}', 'line 1 column 9: expected "," or "}" (a missing comma?)'),
        ("", "line 1 column 1: the text ends where a value was expected"),
        ('{"a": "open', 'line 1 column 12: a string is not closed (a missing ")'),
        ("[" * 40 + "]" * 40, "line 1 column 17: nested more than 16 deep"),
    ]
    for t, want in bad:
        assert check(t) == want, (t, check(t))


def test_command_line_check():
    d = _tmpdir()
    bad = base()
    bad["sensors"][0]["address"] = "76x"
    _write(d + "/config.json", bad)
    assert config.main(["check", d + "/config.json"]) == 1
    _write(d + "/config.json", base())
    assert config.main(["check", d + "/config.json"]) == 0
    assert config.main(["check"]) == 2
    assert config.main(["check", d + "/config.json", d + "/missing.json"]) == 1
