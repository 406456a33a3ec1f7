"""nodectl config-check: a config.json (and secrets.json) checked as the device will check it.

Two passes. First the host reads both files as strict JSON (CPython's parser: a missing or
trailing comma is an error with its line and column, where the device's parser may let it
through) and refuses anything but an object at the top. Then the device's own validator,
lib/node/config.py, runs unchanged in a fresh CPython process with lib/ first on its path, so
the same rules apply on every host, including those without the MicroPython Unix port
(a Raspberry Pi, macOS, Windows).

    python tools/nodectl config-check config.json secrets.json
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodectl.common import (
    EXIT_OK,
    EXIT_REFUSED,
    REPO,
    Refused,
    ToolFailed,
    json_type,
    load_json,
    log,
)

# Runs the device validator in a child interpreter: -I keeps the user's PYTHONPATH and site
# packages out; the device code may use `from micropython import const`, which CPython lacks.
_RUNNER = """\
import runpy, sys, types
sys.path[:0] = [sys.argv.pop(1)]
m = types.ModuleType("micropython"); m.const = lambda v: v
sys.modules.setdefault("micropython", m)
runpy.run_module("node.config", run_name="__main__", alter_sys=True)
"""

SECRETS_HINT = (
    "hint: WiFi networks and broker passwords live in secrets.json, next to config.json; "
    "check both: nodectl config-check config.json secrets.json "
    "(make config-check CONFIG=config.json SECRETS=secrets.json)"
)


def read_object(path: Path, what: str) -> dict:
    doc = load_json(path, what)
    if not isinstance(doc, dict):
        raise Refused(f"{path}: expected a JSON object {{...}} at the top, got {json_type(doc)}")
    return doc


def validate_config(lib: Path, config: Path, secrets: Path | None = None) -> tuple[int, str]:
    """(0, "") or (1, the validator's messages, one per line); Refused for files that are not
    JSON objects, ToolFailed when the validator cannot run."""
    if not (lib / "node" / "config.py").is_file():
        raise ToolFailed(f"cannot validate: no node/config.py under {lib}")
    read_object(config, "config")
    if secrets is not None:
        read_object(secrets, "secrets")
    # Paths as the user wrote them (relative to our cwd), so messages name the file they know.
    argv = [sys.executable, "-I", "-c", _RUNNER, str(lib), "check", str(config)]
    if secrets is not None:
        argv.append(str(secrets))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ToolFailed("the config validator did not finish in 60 s") from None
    out = (r.stdout + r.stderr).strip()
    if r.returncode not in (0, 1):
        raise ToolFailed(f"the config validator crashed (exit {r.returncode}):\n{out}")
    lines = [x for x in out.splitlines() if not x.endswith(": OK")]
    return r.returncode, "\n".join(lines)


def needs_secrets_hint(messages: str, secrets: Path | None) -> bool:
    if secrets is not None:
        return False
    return any(": wifi: missing" in m or "password" in m for m in messages.splitlines())


def check(lib: Path, config: Path, secrets: Path | None) -> tuple[int, str]:
    """validate_config plus the hint a user without secrets.json needs."""
    code, out = validate_config(lib, config, secrets)
    if code != 0 and needs_secrets_hint(out, secrets):
        out += "\n" + SECRETS_HINT
    return code, out


def cmd_config_check(args) -> int:
    config = Path(args.config)
    secrets = Path(args.secrets) if args.secrets else None
    code, out = check(Path(args.lib), config, secrets)
    if code == 0:
        log(f"{config}: OK")
        return EXIT_OK
    print(out, flush=True)
    return EXIT_REFUSED


def register(sub) -> None:
    s = sub.add_parser("config-check", help="validate config.json with the device's validator")
    s.add_argument("config")
    s.add_argument("secrets", nargs="?")
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.set_defaults(func=cmd_config_check)
