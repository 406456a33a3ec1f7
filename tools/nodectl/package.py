"""nodectl package: regenerate (or --check) the package.json that `mpremote mip install` reads.

python tools/nodectl package --check
"""

from __future__ import annotations

import json
from pathlib import Path

from nodectl.build import source_files
from nodectl.common import EXIT_OK, EXIT_REFUSED, REPO, log


def package_json(lib: Path, version: str, repo: Path = REPO) -> dict:
    """mip's format: "urls" lists [device path under the target (default /lib), source]; sources
    are relative to package.json, so `mpremote mip install github:OWNER/REPO` and
    `mpremote mip install path/to/package.json` both work."""
    urls = []
    for src in source_files(lib):
        rel = src.relative_to(lib).as_posix()
        urls.append([rel, src.relative_to(repo).as_posix()])
    return {"urls": urls, "version": version}


def cmd_package(args) -> int:
    path = REPO / "package.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    want = package_json(Path(args.lib), args.version or current.get("version", "0.1.0"))
    if args.check:
        if current.get("urls") != want["urls"]:
            have = {u[0] for u in current.get("urls", [])}
            need = {u[0] for u in want["urls"]}
            log(
                f"package.json is stale: missing {sorted(need - have)}, "
                f"extra {sorted(have - need)}; "
                "run `python tools/nodectl package`"
            )
            return EXIT_REFUSED
        log(f"package.json lists all {len(want['urls'])} files")
        return EXIT_OK
    rows = ",\n".join("    " + json.dumps(u) for u in want["urls"])
    path.write_text(
        f'{{\n  "urls": [\n{rows}\n  ],\n  "version": {json.dumps(want["version"])}\n}}\n'
    )
    log(f"wrote {path}: {len(want['urls'])} files, version {want['version']}")
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser("package", help="regenerate (or --check) the mip package.json from lib/")
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.add_argument("--version")
    s.add_argument("--check", action="store_true")
    s.set_defaults(func=cmd_package)
