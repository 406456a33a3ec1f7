"""nodectl console: the board's serial console, interactive (mpremote's repl, Ctrl-] leaves it)
or `--follow` (only print what the board writes: its state lines, boot messages, tracebacks).

    python tools/nodectl console --port /dev/ttyUSB0 --follow
"""

from __future__ import annotations

import sys
import time

from nodectl.common import (
    EXIT_OK,
    EXIT_TOOL,
    ToolFailed,
    baud_rate,
    positive,
    require_port,
    run,
    tool_argv,
)


def console_argv(port: str, baud: int) -> list[str]:
    # mpremote's repl does not reset the board; Ctrl-] leaves it.
    return tool_argv("mpremote") + ["connect", port, "resume", "repl"]


def follow_console(port: str, baud: int, duration: float | None, out=None) -> int:
    """Print what the board writes, without sending anything (logs, boot messages, tracebacks)."""
    import serial

    out = out or sys.stdout
    try:
        ser = serial.Serial(port, baud, timeout=0.1)
    except serial.SerialException as e:
        raise ToolFailed(f"cannot open {port}: {e}") from None
    t0 = time.monotonic()
    try:
        while duration is None or time.monotonic() - t0 < duration:
            data = ser.read(4096)
            if data:
                out.write(data.decode("utf-8", "replace").replace("\r\n", "\n"))
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        ser.close()
    return EXIT_OK


def cmd_console(args) -> int:
    port = require_port(args.port)
    if args.follow or args.duration:
        return follow_console(port, args.baud, args.duration)
    return run(console_argv(port, args.baud)).returncode and EXIT_TOOL


def register(sub) -> None:
    s = sub.add_parser("console", help="the board's serial console (interactive, or --follow)")
    s.add_argument("--port", required=True)
    s.add_argument("--baud", type=baud_rate, default=115200)
    s.add_argument("--follow", action="store_true", help="only print what the board writes")
    s.add_argument("--duration", type=positive, help="with --follow: stop after this many seconds")
    s.set_defaults(func=cmd_console)
