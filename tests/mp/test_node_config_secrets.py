# A password never comes back out: not in any validator message (whatever is wrong with it or
# around it), not in the normalized document's redacted form, not in command replies.
import json

from node import commands, config
from test_node_config import base

MARK = "Zq7Marker9Secret"


def _pieces(s):
    # any 6-character piece of the marker counts as an echo
    return [s[i : i + 6] for i in range(len(s) - 5)]


def _leaks(text):
    return [p for p in _pieces(MARK) if p in text]


def _variants():
    # every kind of error a secret field can have, with the marker in it
    return [
        MARK * 20,  # too long (was echoed in full)
        MARK[:7],  # too short
        MARK,  # valid length, with errors elsewhere
        [MARK],
        {"x": MARK},
        MARK + "\x00",
    ]


def _docs():
    for v in _variants():
        d = base()
        d["wifi"][0]["password"] = v
        d["mqtt"]["host"] = "bad host"
        yield d
        d = base()
        d["mqtt"]["user"] = "node"
        d["mqtt"]["password"] = v
        d["mqtt"]["port"] = "x"
        yield d
        d = base()
        d["mqtt"]["password"] = v
        d["mqtt"].pop("user", None)
        yield d
        d = base()
        d["wifi"] = [{"ssid": MARK * 3, "password": v}]  # ssid too long next to it
        yield d
        d = base()
        d["wifi"] = {"password": v}
        yield d
        d = base()
        d["mqtt"] = {"host": "h", "password": v, "tls": True}
        yield d


def test_validator_messages_never_echo_a_password():
    n = 0
    for d in _docs():
        for m in config.validate(d):
            n += 1
            # an ssid made of the marker is no secret; skip that message only
            if m.startswith("wifi[0].ssid"):
                continue
            assert not _leaks(m), m
    assert n >= 30, n


def test_redact_hides_every_secret_and_secrets_json_paths():
    d = base()
    d["wifi"] = [{"ssid": "home", "password": MARK}, {"ssid": "b", "password": MARK * 9}]
    d["mqtt"]["user"] = "node"
    d["mqtt"]["password"] = MARK
    d["extra"] = {"password": [MARK]}
    out = json.dumps(commands.redact(d))
    assert not _leaks(out), out
    # with the secrets document, every value it holds is redacted (here a token and a user)
    sec = {"mqtt": {"user": "node-" + MARK, "token": MARK}, "wifi": [{"ssid": MARK}]}
    d = base()
    d["mqtt"]["user"] = sec["mqtt"]["user"]
    d["mqtt"]["token"] = MARK
    d["wifi"] = [{"ssid": MARK, "password": "x" * 8}]
    out = json.dumps(commands.redact(d, sec))
    assert not _leaks(out), out
    assert commands.redact(d, sec)["mqtt"]["host"] == d["mqtt"]["host"]


def test_command_replies_never_echo_a_password():
    for d in _docs():
        msg = json.dumps({"cmd": "set_config", "config": d, "id": 3}).encode()
        c, err = commands.parse(msg)
        probs = config.validate(d)
        r = (
            commands.error_result(msg, err)
            if err
            else commands.result(
                c,
                False,
                error="invalid config",
                problems=[p for p in probs if not p.startswith("wifi[0].ssid")],
            )
        )
        assert not _leaks(r), r
