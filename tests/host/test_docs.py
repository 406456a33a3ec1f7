"""The docs agree with the code: config keys (docs/config.md against the device's validator, both
ways), make targets and nodectl subcommands named in README.md and docs/, relative links.

The validator's keys come from the validator itself, run in the MicroPython Unix port: a probe
config puts an unknown key `zz` into every object, and each "unknown key (allowed: ...)"
message lists what that object takes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
from nodectl import cli  # noqa: E402
from nodectl.common import find_micropython  # noqa: E402

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

_PROBE = r"""
import json, sys
from node import config
top = json.loads(sys.argv[1])
out = []
for extra in [None] + sorted(top):
    doc = {
        "version": 1, "board": "sim", "topic": "a/b", "zz": 1,
        "wifi": [{"ssid": "x", "password": "", "zz": 1}],
        "mqtt": {"host": "h", "zz": 1},
        "sensors": [{"type": "bme280", "zz": 1, "quantities": {"temperature": {
            "zz": 1, "filters": [{"type": t, "zz": 1} for t in config.FILTERS]}}}],
    }
    if extra is not None:
        doc[extra] = {"zz": 1}
    out += config.validate(doc, None, [])
print(json.dumps(out))
"""


def _shape(path: str) -> str:
    """sensors[0].quantities.temperature.filters[2] -> filter.<type>; wifi[0] -> wifi[] ..."""
    path = re.sub(r"^sensors\[0\]\.quantities\.temperature\.filters\[(\d+)\]", r"filter.\1", path)
    path = re.sub(r"^sensors\[0\]\.quantities\.temperature", "quantity", path)
    return re.sub(r"\[0\]", "[]", path)


def validator_keys() -> set[str]:
    mp = find_micropython()
    env = dict(os.environ, MICROPYPATH=str(REPO / "lib"))

    def run(top):
        r = subprocess.run(
            [mp, "-c", _PROBE, json.dumps(sorted(top))],
            capture_output=True, text=True, env=env, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    msgs = run([])
    filters = _filter_types()
    keys: set[str] = set()
    pat = re.compile(r"^(.*?)\.?zz: unknown key \(allowed: (.*)\)$")
    for m in msgs:
        hit = pat.match(m)
        if hit and hit.group(1) == "":
            keys |= set(hit.group(2).split(", "))
    for m in run(keys):  # now with {"zz": 1} under each top-level key
        hit = pat.match(m)
        if not hit or hit.group(1) == "":
            continue
        where = _shape(hit.group(1))
        fm = re.match(r"filter\.(\d+)$", where)
        if fm:
            where = "filter." + filters[int(fm.group(1))]
        keys |= {where + "." + k for k in hit.group(2).split(", ")}
    return keys


def _filter_types() -> list[str]:
    src = (REPO / "lib/node/config.py").read_text()
    m = re.search(r"^FILTERS = \((.*?)\)", src, re.M | re.S)
    assert m, "FILTERS not found in lib/node/config.py"
    return re.findall(r'"([a-z_]+)"', m.group(1))


# docs/config.md headings that hold key tables, and the prefix of their keys
_PREFIX = {
    "Top level": "",
    "mqtt": "mqtt.",
    "sensors[]": "sensors[].",
    "quantities.<quantity>": "quantity.",
    "discovery": "discovery.",
    "deep_sleep": "deep_sleep.",
    "spool": "spool.",
    "status_led": "status_led.",
    "diag, safe_mode, time, commands": "",
}


def documented_keys() -> set[str]:
    keys: set[str] = set()
    heading, table = None, None
    for line in (REPO / "docs/config.md").read_text().splitlines():
        h = re.match(r"^#{2,3} (.*)$", line)
        if h:
            heading, table = h.group(1).strip(), None
            continue
        if not line.startswith("|"):
            table = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if table is None:
            table = cells[0]  # the header row names the table's first column
            continue
        if set(cells[0]) <= set("- "):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        if table == "key" and heading in _PREFIX:
            keys |= {n if "." in n else _PREFIX[heading] + n for n in names}
            if heading == "Top level" and "wifi" in names:
                keys |= {"wifi[]." + k for k in re.findall(r'"(\w+)"', cells[2])}
        elif table == "filter" and heading == "filters":
            for t in names:
                keys.add("filter.%s.type" % t)
                keys |= {"filter.%s.%s" % (t, k) for k in re.findall(r"`(\w+)`", cells[1])}
    return keys


def test_every_config_key_in_the_docs_is_one_the_validator_takes_and_back():
    doc, val = documented_keys(), validator_keys()
    assert len(val) > 60 and len(doc) > 60, (sorted(doc), sorted(val))
    assert sorted(doc - val) == [], "documented in docs/config.md, refused by the validator"
    assert sorted(val - doc) == [], "taken by the validator, missing from docs/config.md"


# ---- make targets and nodectl subcommands ---------------------------------------------------


def _code(text: str) -> list[str]:
    """Code spans and fenced blocks: where a command is written to be typed."""
    fence = r"^ *```[^\n]*\n(.*?)^ *```"  # fences may be indented (in a list item)
    blocks = re.findall(fence, text, re.M | re.S)
    rest = re.sub(fence, "", text, flags=re.M | re.S)
    out = blocks
    for para in re.split(r"\n\s*\n", rest):  # a span may wrap lines, never paragraphs
        if all(x.startswith("    ") for x in para.splitlines()):
            out.append(para)  # an indented code block
        else:
            out += re.findall(r"`([^`]+)`", para)
    return out


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, re.M))


def named(pattern: str) -> list[tuple[str, str]]:
    out = []
    for p in DOCS:
        for code in _code(p.read_text()):
            for m in re.finditer(pattern, code):
                out.append((p.relative_to(REPO).as_posix(), m.group(1)))
    return out


def test_every_make_target_in_the_docs_exists():
    targets = make_targets()
    assert {"sim", "test", "deploy", "flash"} <= targets
    found = named(r"(?:^|[\s;(&|])make ([a-z][\w-]*)")
    assert len(found) > 10
    assert [f for f in found if f[1] not in targets] == []


def test_every_nodectl_subcommand_in_the_docs_exists():
    p = cli.make_parser()
    names = {n for a in p._subparsers._group_actions for n in a.choices}  # noqa: SLF001
    assert {"flash", "deploy", "broker", "config-check"} <= names
    found = named(r"nodectl[/\\]?\s+([a-z][\w-]*)")
    assert len(found) > 3
    assert [f for f in found if f[1] not in names] == []


# ---- links ------------------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lowercase, punctuation dropped, spaces to hyphens."""
    out = set()
    for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M):
        s = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        out.add(s)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(doc):
    text = re.sub(r"^ *```.*?^ *```", "", doc.read_text(), flags=re.M | re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    bad = []
    for link in links:
        if re.match(r"^[a-z]+:", link):
            continue  # http:, https:, mailto:
        target, _, anchor = link.partition("#")
        t = (doc.parent / target).resolve() if target else doc
        if not t.exists():
            bad.append(link)
        elif anchor and t.suffix == ".md" and anchor not in _anchors(t):
            bad.append(link + " (no such heading)")
    assert bad == []


# ---- wiring diagrams --------------------------------------------------------------------------

_ROLE = re.compile(r"^(SDA|SCL|1-Wire|DHT22|LED|BUTTON|BATTERY ADC) GPIO(\d+)\b")


def board_roles(b: dict) -> set[tuple[str, int]]:
    """What a diagram must show for this board file: each role and its GPIO."""
    want = {
        ("SDA", b["i2c"]["sda"]),
        ("SCL", b["i2c"]["scl"]),
        ("1-Wire", b["onewire_pin"]),
        ("DHT22", b["dht_pin"]),
    }
    for role, key, field in (("LED", "led", "pin"), ("BUTTON", "button", "pin")):
        if b.get(key):
            want.add((role, b[key][field]))
    if b.get("battery"):
        want.add(("BATTERY ADC", b["battery"]["adc_pin"]))
    return want


def drawn_roles(svg: Path) -> tuple[set[tuple[str, int]], list[str]]:
    """(role, GPIO) pairs from the diagram's text labels, and labels naming a GPIO otherwise."""
    import xml.etree.ElementTree as ET

    root = ET.parse(svg).getroot()
    got, stray = set(), []
    for t in root.iter("{http://www.w3.org/2000/svg}text"):
        s = "".join(t.itertext()).strip()
        m = _ROLE.match(s)
        if m:
            got.add((m.group(1), int(m.group(2))))
        elif "GPIO" in s:
            stray.append(s)
    return got, stray


@pytest.mark.parametrize("board", sorted((REPO / "boards").glob("*.json")), ids=lambda p: p.stem)
def test_each_board_has_a_wiring_diagram_with_its_pins(board):
    svg = REPO / "docs/wiring" / (board.stem + ".svg")
    assert svg.exists(), "no wiring diagram %s" % svg.relative_to(REPO)
    b = json.loads(board.read_text())
    got, stray = drawn_roles(svg)
    assert stray == []
    assert got == board_roles(b)
    text = svg.read_text()
    assert "boards/%s.json" % board.stem in text and b["name"] in text
    refs = "".join(p.read_text() for p in DOCS)
    assert "wiring/%s.svg" % board.stem in refs, "not shown in README.md or docs/"


def test_no_wiring_diagram_without_a_board():
    boards = {p.stem for p in (REPO / "boards").glob("*.json")}
    assert {p.stem for p in (REPO / "docs/wiring").glob("*.svg")} <= boards
