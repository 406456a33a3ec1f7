# Mutated configs, seeded: reading and validating answer "valid" or with messages, never with
# an exception (a raise here is a reset loop on the device). Runs inside MicroPython like the
# node; bench/bench_config_fuzz.py runs the same cases at length in a 256 KB heap.
import json

from node import cfgfile, commands, config
from test_node_config import base

TIMEOUT = 60

_DEEP = (2, 17, 40, 1000, 3000)
_VALUES = (
    "1e999",
    "-1e999",
    "1e308",
    "9" * 40,
    "[0]",
    "{}",
    "null",
    '"76"',
    "true",
    '"\\ud800"',
    '"K\xfcche"',
    '""',
    "-0",
    "0.0000001",
    '"0x76"',
    '"' + "p" * 300 + '"',
    "[[]]",
)


class Rand:
    """xorshift32: the same cases on every port and every run."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n


def _seed_doc():
    d = base()
    d["sensors"][0]["quantities"] = {
        "temperature": {
            "filters": [{"type": "clamp", "min": -40, "max": 85}, {"type": "delta", "min": 0.1}]
        }
    }
    d["mqtt"]["user"] = "node"
    d["mqtt"]["password"] = "pw-secret-1"
    return d


def _paths(v, path, out):
    out.append(path)
    if isinstance(v, dict):
        for k in v:
            _paths(v[k], path + [k], out)
    elif isinstance(v, list):
        for i in range(len(v)):
            _paths(v[i], path + [i], out)


def _set(doc, path, text):
    if not path:
        return text
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = "\x01MARK\x01"
    return json.dumps(doc).replace('"\\u0001MARK\\u0001"', text)


def mutate(r, seed_text, seed_doc):
    """One mutated config as bytes."""
    k = r.below(10)
    b = bytearray(seed_text)
    n = len(b)
    if k == 0:  # flip bytes
        for _ in range(1 + r.below(4)):
            i = r.below(n)
            b[i] = r.below(256)
        return bytes(b)
    if k == 1:  # insert or delete a syntax character
        i = r.below(n)
        if r.below(2):
            return bytes(b[:i]) + b',:[]{}"\\'[r.below(8) : r.below(8) + 1] + bytes(b[i:])
        return bytes(b[:i]) + bytes(b[i + 1 :])
    if k == 2:  # truncate
        return bytes(b[: r.below(n)])
    if k == 3:  # too big: the size of the comment; run() writes it to the file in pieces
        return 2000 * (1 + r.below(40))
    if k == 4:  # deep nesting somewhere
        d = _DEEP[r.below(len(_DEEP))]
        ps = []
        _paths(json.loads(seed_text), [], ps)
        return _set(json.loads(seed_text), ps[r.below(len(ps))], "[" * d + "]" * d).encode()
    if k == 5:  # Latin-1 text
        return seed_text.replace(b"Wohnzimmer", b"K\xfcche")
    # 6..9: a value of the wrong kind at a random path
    ps = []
    _paths(seed_doc, [], ps)
    doc = json.loads(seed_text)
    t = _set(doc, ps[r.below(len(ps))], _VALUES[r.below(len(_VALUES))])
    return t.encode() if isinstance(t, str) else t


def _write(path, seed_text, data):
    with open(path, "wb") as f:
        if isinstance(data, int):
            f.write(seed_text[:-1] + b', "comment": "')
            piece = b"x" * 1000
            for _ in range(data // 1000):
                f.write(piece)
            f.write(b'"}')
        else:
            f.write(data)


def run(n, seed=1):
    """(cases, crashes, first crash descriptions): every case written to a file, then read
    (`cfgfile.read_json`, as the node reads config.json), checked, compared and redacted."""
    import gc

    import tmpdir

    path = tmpdir.fresh_dir("cfgfuzz") + "/config.json"
    seed_doc = _seed_doc()
    seed_text = json.dumps(seed_doc).encode()
    r = Rand(seed)
    crashes = []
    ncr = 0
    for i in range(n):
        data = b""
        try:
            data = mutate(r, seed_text, seed_doc)
            _write(path, seed_text, data)
            data = data if isinstance(data, int) else len(data)
            gc.collect()
            doc, err = cfgfile.read_json(path)
            if doc is not None:
                msgs, cfg = config.check(doc)
                for m in msgs:
                    if not isinstance(m, str):
                        raise TypeError("message not a string")
                    if "pw-secret-1" in m:
                        raise ValueError("password echoed: " + m)
                config.remote_change_problems(seed_doc, doc)
                commands.redact(doc)
            elif not isinstance(err, str):
                raise TypeError("no message")
        except Exception as e:  # noqa: BLE001 - counting them is the point
            ncr += 1
            if len(crashes) < 5:
                crashes.append("case %d: %s %s (%r)" % (i, type(e).__name__, e, data))
    return n, ncr, crashes


def test_mutated_configs_never_make_the_validator_raise():
    n, ncr, crashes = run(300, seed=1)
    assert ncr == 0, crashes


def test_mutated_configs_other_seed():
    n, ncr, crashes = run(200, seed=7)
    assert ncr == 0, crashes


def test_case_mix_reaches_valid_and_invalid_answers():
    # the fuzz must exercise both ends, or it tests nothing
    seed_doc = _seed_doc()
    seed_text = json.dumps(seed_doc).encode()
    r = Rand(3)
    valid = invalid_json = invalid_doc = 0
    for _ in range(200):
        data = mutate(r, seed_text, seed_doc)
        if isinstance(data, int):
            continue
        doc, err = cfgfile.parse_json(data)
        if doc is None:
            invalid_json += 1
        elif config.validate(doc):
            invalid_doc += 1
        else:
            valid += 1
    assert valid and invalid_json > 20 and invalid_doc > 20, (valid, invalid_json, invalid_doc)
