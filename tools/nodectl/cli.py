"""The nodectl command line: one subparser per subcommand module, errors as one line.

from nodectl.cli import main
sys.exit(main(["config-check", "config.json", "secrets.json"]))
"""

from __future__ import annotations

import subprocess
import sys

import nodectl
from nodectl import (
    battery,
    broker,
    build,
    bundle,
    configcheck,
    console,
    deploy,
    fleet,
    flash,
    monitor,
    ota,
    package,
    provision,
)
from nodectl.common import EXIT_REFUSED, EXIT_TOOL, Parser, Refused, ToolFailed

SUBCOMMANDS = (
    flash,
    build,
    deploy,
    provision,
    configcheck,
    battery,
    monitor,
    console,
    package,
    broker,
    bundle,
    ota,
    fleet,
)


def make_parser() -> Parser:
    doc = nodectl.__doc__ or "nodectl"
    p = Parser(
        prog="nodectl",
        description=doc.split("\n\n")[0],
        epilog="exit codes: 0 ok, 1 refused/check failed, 2 bad command line, "
        "3 tool, device or broker failed",
    )
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for mod in SUBCOMMANDS:
        mod.register(sub)
    return p


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except Refused as e:
        print(f"nodectl {args.cmd}: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except ToolFailed as e:
        print(f"nodectl {args.cmd}: {e}", file=sys.stderr)
        return EXIT_TOOL
    except subprocess.TimeoutExpired as e:
        print(
            f"nodectl {args.cmd}: {e.cmd[0] if e.cmd else 'tool'} timed out after {e.timeout} s",
            file=sys.stderr,
        )
        return EXIT_TOOL
    except KeyboardInterrupt:
        print(f"nodectl {args.cmd}: interrupted", file=sys.stderr)
        return 130
