"""Update bundles: pack the compiled build (the one deploy copies) with a manifest, and sign
the manifest for one node.

Signing scheme: the fleet secret stays on the host. Each node's key is
HMAC-SHA256(fleet_secret, node_id) (node_id: the node's base topic), written to the node's
ota.key once by USB. A manifest is signed with that node's key, so a node's flash reveals only
its own key, and a broker publisher, holding no key, can install nothing. See docs/ota.md.

    body, blob = bundle.pack(build_dir, version="2", board="esp32")
    payload = bundle.sign(body, bundle.node_key(secret, "Erdgeschoss/Wohnzimmer"))
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from pathlib import Path

from nodectl import build
from nodectl.common import Refused, log

TRIAL_S = 120
OTA_KEY = "ota.key"  # the node's key file at its filesystem root; without it, no updates


def read_secret(path: Path) -> bytes:
    """The fleet secret file (surrounding whitespace dropped): one clear line when missing."""
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise Refused(f"{path}: cannot read the fleet secret: {e.strerror}") from None
    if not secret:
        raise Refused(f"{path}: the fleet secret is empty")
    return secret


def node_key(secret: bytes, node_id: str) -> bytes:
    return hmac.new(secret, node_id.encode(), hashlib.sha256).digest()


def files_of(build_dir: Path) -> list[tuple[str, bytes]]:
    """lib/** and the root files (main.py, boot.py) of a build, in a fixed order."""
    out = []
    for p in sorted((build_dir / "lib").rglob("*")):
        if p.is_file():
            out.append((p.relative_to(build_dir).as_posix(), p.read_bytes()))
    for name in build.ROOT_FILES:
        if (build_dir / name).is_file():
            out.append((name, (build_dir / name).read_bytes()))
    return out


def seq_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return int(text)


def new_seq() -> int:
    """A bundle's sequence number: this host's clock in ms, above every earlier bundle's (a node
    takes only a bundle newer than the last it installed)."""
    global _last_seq
    _last_seq = max(int(time.time() * 1000), _last_seq + 1)
    return _last_seq


_last_seq = 0


def pack(
    build_dir: Path, version: str, board: str, trial_s: int = TRIAL_S, seq: int | None = None
) -> tuple[bytes, bytes]:
    files = files_of(build_dir)
    if not files:
        raise Refused(f"{build_dir}: no files to bundle (run `nodectl build`)")
    body = {
        "version": version,
        "board": board,
        "trial_s": trial_s,
        "seq": seq or new_seq(),
        "files": [[p, len(d), hashlib.sha256(d).hexdigest()] for p, d in files],
    }
    return json.dumps(body, separators=(",", ":")).encode(), b"".join(d for _, d in files)


def sign(body: bytes, key: bytes) -> bytes:
    return body + b"\n" + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def write(path: Path, body: bytes, blob: bytes) -> None:
    """A bundle file: the manifest body on the first line, then the files' bytes."""
    path.write_bytes(body + b"\n" + blob)


def read(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    i = data.find(b"\n")
    if i < 0:
        raise Refused(f"{path}: not a bundle")
    return data[:i], data[i + 1 :]


def cmd_bundle(args) -> int:
    if args.key_for:
        secret = read_secret(Path(args.secret))
        Path(args.out).write_bytes(node_key(secret, args.key_for))
        log(f"wrote {args.out}: the ota.key of {args.key_for} (copy it to the node by USB)")
        return 0
    lib, root = Path(args.lib), Path(args.root_dir)
    info = build.build(lib, root, Path(args.build_dir), version=args.version)
    body, blob = pack(Path(args.build_dir), info["version"], args.board, args.trial_s, args.seq)
    write(Path(args.out), body, blob)
    log(f"wrote {args.out}: version {info['version']}, {len(blob)} bytes")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bundle", help="pack the compiled build into an update bundle")
    p.add_argument("--out", default="build/bundle.ota")
    p.add_argument("--lib", default=str(build.REPO / "lib"))
    p.add_argument("--root-dir", default=str(build.REPO / "firmware"))
    p.add_argument("--build-dir", default="build/bundle")
    p.add_argument("--version", default=None)
    p.add_argument("--board", default="esp32", help="sys.platform of the nodes (default esp32)")
    p.add_argument("--trial-s", type=int, default=TRIAL_S, help="seconds to connect and publish")
    p.add_argument(
        "--seq",
        type=seq_number,
        default=None,
        help="sequence number (default: this host's clock in ms); a node takes only newer ones",
    )
    p.add_argument("--key-for", default=None, help="write this node id's ota.key to --out instead")
    p.add_argument("--secret", default="fleet.secret", help="the fleet's signing secret file")
    p.set_defaults(func=cmd_bundle)
