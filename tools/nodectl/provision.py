"""nodectl provision: one config per node from a fleet file, checked by the device's validator,
a LittleFS image per node with MicroPython's vfs geometry, optionally a factory image (firmware
and filesystem in one file) and flashing the one board at hand.

    python tools/nodectl provision --fleet fleet.json --flash-size 4MB --fw fw.bin
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from nodectl.build import fresh_build
from nodectl.bundle import OTA_KEY, node_key, read_secret
from nodectl.common import (
    EXIT_OK,
    REPO,
    Refused,
    ToolFailed,
    add_build_options,
    baud_rate,
    load_json,
    log,
    require_port,
    run,
)
from nodectl.configcheck import validate_config
from nodectl.flash import (
    DEFAULT_BAUD,
    FS_BLOCK,
    VFS_START,
    Chip,
    check_image_for,
    chip_by_key,
    cmd_flash,
    littlefs_image,
    merge_argv,
    parse_size,
    vfs_geometry,
)

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,22}$")  # MQTT 3.1.1 servers must accept 1..23 bytes
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def _render(value, fields: dict, where: str):
    if isinstance(value, str):

        def sub(m):
            if m.group(1) not in fields:
                raise Refused(
                    f"{where}: unknown placeholder {{{m.group(1)}}} "
                    f"(node has {', '.join(sorted(fields))})"
                )
            return str(fields[m.group(1)])

        return PLACEHOLDER.sub(sub, value)
    if isinstance(value, dict):
        return {k: _render(v, fields, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, fields, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _get_path(obj, dotted: str):
    for part in dotted.split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return None
    return obj


def load_fleet(path: Path) -> dict:
    """Read a fleet file and render every node's config and secrets (see tools/fleet.example.json).
    Returns {"nodes": [{"id", "config", "secrets"}], "flash_size", "chip"}."""
    fleet = load_json(path, "fleet file")
    base = path.parent
    name = path.name
    if (
        not isinstance(fleet, dict)
        or not isinstance(fleet.get("nodes"), list)
        or not fleet["nodes"]
    ):
        raise Refused(f"{name}: nodes: expected a non-empty list")

    def part(key):
        v = fleet.get(key)
        if isinstance(v, str):
            return load_json(base / v, key)
        if v is None or isinstance(v, dict):
            return v or {}
        raise Refused(f"{name}: {key}: expected an object or a file name, got {type(v).__name__}")

    template, secrets = part("template"), part("secrets")
    if not template:
        raise Refused(f"{name}: template: expected the config.json every node starts from")
    unique = fleet.get("unique", [])
    nodes, seen_ids = [], set()
    for i, node in enumerate(fleet["nodes"]):
        where = f"{name}: nodes.{i}"
        if not isinstance(node, dict):
            raise Refused(f"{where}: expected an object")
        nid = node.get("id")
        if not isinstance(nid, str) or not NODE_ID.match(nid):
            raise Refused(
                f"{where}.id: expected 1..23 of [a-z0-9_-] starting with a letter or digit, "
                f"got {nid!r}"
            )
        if nid in seen_ids:
            raise Refused(f"{where}.id: {nid!r} is already used by another node")
        seen_ids.add(nid)
        fields = {k: v for k, v in node.items() if isinstance(v, (str, int, float))}
        cfg = _merge(_render(template, fields, f"{where} template"), node.get("config", {}))
        sec = _merge(_render(secrets, fields, f"{where} secrets"), node.get("secrets", {}))
        nodes.append({"id": nid, "config": cfg, "secrets": sec})
    for dotted in unique:
        owners: dict = {}
        for n in nodes:
            v = _get_path(n["config"], dotted)
            if v is None:
                raise Refused(f"{name}: unique: node {n['id']} has no {dotted} in its config")
            key = json.dumps(v, sort_keys=True)
            if key in owners:
                raise Refused(
                    f"{name}: nodes {owners[key]} and {n['id']} share {dotted} = {v!r}; "
                    "it must be unique"
                )
            owners[key] = n["id"]
    return {"nodes": nodes, "flash_size": fleet.get("flash_size"), "chip": fleet.get("chip")}


def make_fs_image(files: dict[str, bytes], block_count: int, out: Path) -> int:
    """Write a LittleFS v2 image of exactly block_count * 4096 bytes holding files (device path ->
    content), with MicroPython's lfs2 settings (read/prog size 32, lookahead 32). Returns the
    blocks in use. Refuses content that does not fit."""
    import littlefs

    fs = littlefs_image(block_count)
    try:
        for path, data in sorted(files.items()):
            parent = path.rpartition("/")[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "wb") as f:
                f.write(data)
        used = fs.used_block_count
    except littlefs.errors.LittleFSError as e:
        if e.code == littlefs.errors.LittleFSError.Error.LFS_ERR_NOSPC:
            need = sum(len(d) for d in files.values())
            raise Refused(
                f"the files ({need} bytes) do not fit in {block_count} blocks of 4096"
            ) from None
        raise
    image = bytes(fs.context.buffer)
    if len(image) != block_count * FS_BLOCK:
        raise ToolFailed(f"littlefs wrote {len(image)} bytes, expected {block_count * FS_BLOCK}")
    out.write_bytes(image)
    return used


def board_def(boards: Path, name) -> dict:
    """boards/<name>.json (chip, flash_size_mb, pins), or {} when there is none."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
        return {}
    path = boards / f"{name}.json"
    return load_json(path, "board definition") if path.is_file() else {}


def node_target(n: dict, args, fleet: dict, boards: Path) -> tuple[Chip, int, str]:
    """Chip and flash size for one node: command line, else fleet file, else the board
    definition named by the node's config ("board"), else esp32 with 4MB."""
    b = board_def(boards, n["config"].get("board"))
    chip = chip_by_key(args.chip or fleet["chip"] or b.get("chip") or "esp32")
    mb = b.get("flash_size_mb")
    size_text = args.flash_size or fleet["flash_size"] or (f"{mb}MB" if mb else "4MB")
    return chip, parse_size(size_text, "--flash-size"), size_text


def cmd_provision(args) -> int:
    if args.flash:
        require_port(args.port, must_exist=not args.dry_run)
    fleet_path = Path(args.fleet)
    fleet = load_fleet(fleet_path)
    vfs_start = int(args.fs_start, 0)
    fw = Path(args.fw) if args.fw else None
    if fw is not None and not fw.is_file():
        raise Refused(f"--fw {fw}: no such file")
    nodes = fleet["nodes"]
    if args.node:
        nodes = [n for n in nodes if n["id"] in args.node]
        missing = set(args.node) - {n["id"] for n in nodes}
        if missing:
            raise Refused(f"--node {', '.join(sorted(missing))}: not in {fleet_path}")
    if args.flash and len(nodes) != 1:
        raise Refused("provision --flash: choose the one board's node with --node ID")
    # Every node's target is checked before anything is built or written.
    for n in nodes:
        chip, flash_size, size_text = node_target(n, args, fleet, Path(args.boards))
        n["chip"], n["flash_size"], n["size_text"] = chip, flash_size, size_text
        n["blocks"] = vfs_geometry(flash_size, vfs_start)
        if fw is not None:
            try:
                check_image_for(chip, fw)
            except Refused as e:
                raise Refused(f"node {n['id']}: {e}") from None
            if chip.fw_offset + fw.stat().st_size > vfs_start:
                raise Refused(
                    f"--fw {fw}: {fw.stat().st_size} bytes at 0x{chip.fw_offset:x} "
                    f"overlap the vfs at 0x{vfs_start:x}"
                )
    ota_secret = read_secret(Path(args.ota_secret)) if args.ota_secret else None
    lib = Path(args.lib)
    if not args.no_validate:
        # All nodes' configs pass the device's validator before any output is written.
        with tempfile.TemporaryDirectory(prefix="nodectl-") as tmp:
            for n in nodes:
                cfg_path = Path(tmp) / f"{n['id']}.config.json"
                cfg_path.write_text(json.dumps(n["config"]))
                sec_path = None
                if n["secrets"]:
                    sec_path = Path(tmp) / f"{n['id']}.secrets.json"
                    sec_path.write_text(json.dumps(n["secrets"]))
                code, msg = validate_config(lib, cfg_path, sec_path)
                if code != 0:
                    print(
                        msg.replace(str(cfg_path), f"node {n['id']} config.json"), file=sys.stderr
                    )
                    raise Refused(f"node {n['id']}: generated config is not valid; nothing written")
    build_dir = fresh_build(args, lib)
    app = {
        p.relative_to(build_dir).as_posix(): p.read_bytes()
        for p in sorted(build_dir.rglob("*"))
        if p.is_file()
    }
    out = Path(args.out)
    made = []
    for n in nodes:
        chip, flash_size, blocks = n["chip"], n["flash_size"], n["blocks"]
        d = out / n["id"]
        d.mkdir(parents=True, exist_ok=True)
        cfg_path = d / "config.json"
        cfg_path.write_text(json.dumps(n["config"], indent=2, sort_keys=True) + "\n")
        sec_path = None
        if n["secrets"]:
            sec_path = d / "secrets.json"
            sec_path.write_text(json.dumps(n["secrets"], indent=2, sort_keys=True) + "\n")
        files = dict(app)
        files["config.json"] = cfg_path.read_bytes()
        if ota_secret is not None:
            # The node's own key only (see bundle.node_key): its flash never holds the secret.
            topic = n["config"].get("topic")
            if not isinstance(topic, str) or not topic:
                raise Refused(f"node {n['id']}: --ota-secret: the config has no topic to key")
            files[OTA_KEY] = node_key(ota_secret, topic)
        if sec_path is not None:
            files["secrets.json"] = sec_path.read_bytes()
        img = d / f"fs-{flash_size // 1048576}MB.img"
        used = make_fs_image(files, blocks, img)
        line = f"{n['id']}: {img} ({blocks} blocks, {used} used, {len(files)} files)"
        if fw is not None:
            factory = d / f"factory-{chip.key}-{flash_size // 1048576}MB.bin"
            argv = merge_argv(chip, factory, [(chip.fw_offset, fw), (vfs_start, img)])
            r = run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                raise ToolFailed("esptool merge-bin failed:\n" + (r.stdout + r.stderr).strip())
            line += f"; {factory} (flash at 0x{chip.fw_offset:x})"
            n["factory"] = factory
        n["image"] = img
        made.append(n)
        log(line)
    if args.flash:
        n = made[0]
        args2 = argparse.Namespace(
            port=args.port,
            chip=n["chip"].key,
            fw=str(fw) if fw else None,
            fs=str(n["image"]),
            flash_size=n["size_text"],
            no_erase=fw is None,
            baud=args.baud,
            dry_run=args.dry_run,
        )
        return cmd_flash(args2)
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser(
        "provision", help="LittleFS image per node of a fleet file (+ factory image, + flash)"
    )
    s.add_argument("--fleet", required=True, help="fleet file (see tools/fleet.example.json)")
    s.add_argument("--flash-size", help="4MB, 8MB, 16MB... (default: the fleet file's, else 4MB)")
    s.add_argument(
        "--fs-start", default=hex(VFS_START), help="vfs partition start (default 0x200000)"
    )
    s.add_argument("--chip", help="default: the fleet file's, else the board definition's")
    s.add_argument(
        "--fw", "--firmware", dest="fw", help="MicroPython .bin to merge into a factory image"
    )
    s.add_argument("--node", action="append", help="only this node id (repeatable)")
    s.add_argument("--out", default=str(REPO / "build" / "fleet"))
    s.add_argument("--no-validate", action="store_true", help="skip the device validator")
    s.add_argument(
        "--ota-secret",
        metavar="FILE",
        help="the fleet's signing secret: put each node's ota.key into its image",
    )
    add_build_options(s)
    s.add_argument("--flash", action="store_true", help="flash the one --node to --port")
    s.add_argument("--port", help="serial port for --flash")
    s.add_argument("--baud", type=baud_rate, default=DEFAULT_BAUD)
    s.add_argument(
        "--dry-run", action="store_true", help="with --flash: print the esptool commands"
    )
    s.set_defaults(func=cmd_provision)
