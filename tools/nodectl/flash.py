"""nodectl flash: write MicroPython (and/or a filesystem image) to a board with esptool.

Knows the chips: their esptool names, where the MicroPython image goes, the chip id in an ESP
image header. Every esptool run is built as an argv list by a pure function first, so tests and
`--dry-run` show exactly what would run. Nothing runs without a port the user named.

    python tools/nodectl flash --port /dev/ttyUSB0 --fw ESP32_GENERIC-v1.28.0.bin
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from nodectl.common import (
    EXIT_OK,
    Refused,
    ToolFailed,
    baud_rate,
    log,
    require_port,
    run,
    tool_argv,
)


@dataclass(frozen=True)
class Chip:
    key: str  # esptool --chip name
    name: str  # as Espressif writes it
    fw_offset: int  # where the MicroPython .bin (bootloader first) goes
    image_id: int  # chip id in the ESP image extended header (esptool targets IMAGE_CHIP_ID)


CHIPS = {
    c.key: c
    for c in (
        Chip("esp32", "ESP32", 0x1000, 0),
        Chip("esp32s2", "ESP32-S2", 0x1000, 2),
        Chip("esp32s3", "ESP32-S3", 0x0, 9),
        Chip("esp32c3", "ESP32-C3", 0x0, 5),
        Chip("esp32c6", "ESP32-C6", 0x0, 13),
        Chip("esp32c5", "ESP32-C5", 0x2000, 23),
        Chip("esp32p4", "ESP32-P4", 0x2000, 18),
    )
}
# Ids of chips we do not support, so a wrong image gets a name in the message.
OTHER_IMAGE_IDS = {12: "ESP32-C2", 16: "ESP32-H2", 20: "ESP32-C61", 25: "ESP32-H21", 28: "ESP32-H4"}

ESP_IMAGE_MAGIC = 0xE9
DEFAULT_BAUD = 460800
FALLBACK_BAUDS = (115200,)
# MicroPython >= 1.26 creates the vfs partition from the end of the app partition to the end of
# flash; on the generic boards that start is 0x200000 (docs/tools.md).
VFS_START = 0x200000
FS_BLOCK = 4096


def chip_by_key(key: str) -> Chip:
    k = key.lower().replace("-", "").replace("_", "")
    if k not in CHIPS:
        raise Refused(f"--chip {key}: expected one of {', '.join(CHIPS)}")
    return CHIPS[k]


def chip_name_for_id(image_id: int) -> str:
    for c in CHIPS.values():
        if c.image_id == image_id:
            return c.name
    return OTHER_IMAGE_IDS.get(image_id, f"unknown chip id {image_id}")


def image_chip(path: Path) -> Chip:
    """The chip an ESP image (MicroPython .bin, starting with the bootloader) was built for.

    ESP image header: byte 0 magic 0xE9, bytes 1..7 segment count, flash mode/size, entry point;
    then the 16-byte extended header whose bytes 4..5 (file bytes 12..13) hold the chip id, LE.
    """
    try:
        head = path.read_bytes()[:24]
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from e
    if len(head) < 24 or head[0] != ESP_IMAGE_MAGIC:
        got = f"0x{head[0]:02x}" if head else "an empty file"
        raise Refused(
            f"{path}: not an ESP firmware image (magic byte 0xe9 expected at offset 0, got {got})"
        )
    image_id = int.from_bytes(head[12:14], "little")
    for c in CHIPS.values():
        if c.image_id == image_id:
            return c
    raise Refused(f"{path}: built for {chip_name_for_id(image_id)}, which nodectl does not support")


def parse_chip_report(text: str) -> Chip:
    """The chip esptool found: 'Detecting chip type... ESP32-S3' (the family name) or, failing
    that, 'Chip type: ESP32-D0WD-V3 (revision v3.1)'. Package names of the plain ESP32
    (D0WD, S0WD, U4WDH, PICO-D4) are not variants: a variant is S/C/P/H + digits, whole."""
    m = re.search(r"Detecting chip type\.*\s*(ESP32(?:-([SCPH]\d+)\b)?)", text, re.I) or re.search(
        r"(?:Chip type:|Chip is)\s*(ESP32(?:-([SCPH]\d+)\b)?)", text, re.I
    )
    if not m:
        raise ToolFailed("esptool did not report a chip type")
    key = "esp32" + (m.group(2) or "").lower()
    if key not in CHIPS:
        raise Refused(f"board is {m.group(1).upper()}, which nodectl does not support")
    return CHIPS[key]


def parse_flash_size(text: str) -> int | None:
    """Bytes of flash from esptool's 'Detected flash size: 4MB'."""
    m = re.search(r"Detected flash size:\s*(\d+)\s*MB", text)
    return int(m.group(1)) * 1024 * 1024 if m else None


def esptool_cmd() -> list[str]:
    """esptool from this venv, or $NODECTL_ESPTOOL (e.g. "esptool --trace", or a test double)."""
    return shlex.split(os.environ.get("NODECTL_ESPTOOL", "")) or tool_argv("esptool")


def esptool_base(
    chip: Chip | None, port: str | None, baud: int | None = None, esptool=None
) -> list[str]:
    argv = list(esptool or esptool_cmd())
    if chip is not None:
        argv += ["--chip", chip.key]
    if port:
        argv += ["--port", port]
    if baud:
        argv += ["--baud", str(baud)]
    return argv


def detect_argv(port: str, esptool=None) -> list[str]:
    # flash-id names the chip and the flash size in one connection.
    return esptool_base(None, port, esptool=esptool) + ["flash-id"]


def erase_argv(chip: Chip, port: str, esptool=None) -> list[str]:
    return esptool_base(chip, port, esptool=esptool) + ["erase-flash"]


def write_argv(
    chip: Chip, port: str, regions: list[tuple[int, Path]], baud: int, esptool=None
) -> list[str]:
    argv = esptool_base(chip, port, baud, esptool=esptool) + ["write-flash"]
    for offset, path in regions:
        argv += [f"0x{offset:x}", str(path)]
    return argv


def merge_argv(
    chip: Chip, output: Path, regions: list[tuple[int, Path]], esptool=None
) -> list[str]:
    # --target-offset: the merged file starts at the firmware offset, so it flashes like the .bin.
    argv = esptool_base(chip, None, esptool=esptool) + ["merge-bin", "-o", str(output)]
    argv += ["--target-offset", f"0x{regions[0][0]:x}"]
    for offset, path in regions:
        argv += [f"0x{offset:x}", str(path)]
    return argv


def flash_plan(
    chip: Chip,
    port: str,
    fw: Path | None,
    fs: Path | None = None,
    *,
    erase: bool = True,
    baud: int = DEFAULT_BAUD,
    fallback=FALLBACK_BAUDS,
    esptool=None,
) -> list[list[list[str]]]:
    """The esptool runs for one flash, as steps; each step lists alternatives tried in order
    (a write falls back to lower baud rates when the faster one fails)."""
    regions: list[tuple[int, Path]] = []
    if fw is not None:
        regions.append((chip.fw_offset, fw))
    if fs is not None:
        regions.append((VFS_START, fs))
    steps: list[list[list[str]]] = []
    if erase:
        steps.append([erase_argv(chip, port, esptool)])
    bauds = [baud] + [b for b in fallback if b < baud]
    steps.append([write_argv(chip, port, regions, b, esptool) for b in bauds])
    return steps


def run_flash_plan(steps, runner=None) -> None:
    runner = runner or (lambda argv: run(argv).returncode)
    for alternatives in steps:
        for i, argv in enumerate(alternatives):
            log("$ " + shlex.join(argv))
            if runner(argv) == 0:
                break
            if i + 1 < len(alternatives):
                log("  failed; retrying at a lower baud rate")
        else:
            raise ToolFailed(f"esptool failed: {shlex.join(alternatives[-1])}")


def check_image_for(chip: Chip, fw: Path) -> None:
    built = image_chip(fw)
    if built != chip:
        raise Refused(
            f"{fw}: image built for {built.name} but the board is {chip.name}; "
            f"download the {chip.name} build of MicroPython"
        )


def parse_size(text: str, what: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(MB|M|MiB|KB|K|KiB)?\s*", text, re.I)
    if not m:
        raise Refused(f"{what} {text}: expected a size such as 4MB")
    unit = (m.group(2) or "").upper()
    mult = 1024 * 1024 if unit.startswith("M") else 1024 if unit.startswith("K") else 1
    return int(m.group(1)) * mult


def vfs_geometry(flash_size: int, vfs_start: int = VFS_START) -> int:
    """Block count of the vfs partition: (flash size - start) / 4096, refusing what the firmware
    would not mount (MicroPython's mount fails with EINVAL on any other count)."""
    mib = flash_size / (1024 * 1024)
    if flash_size < 4 * 1024 * 1024 or flash_size & (flash_size - 1):
        raise Refused(f"--flash-size {mib:g}MB: expected 4MB, 8MB, 16MB, 32MB, 64MB or 128MB")
    if vfs_start % FS_BLOCK or not 0 < vfs_start < flash_size:
        raise Refused(
            f"--fs-start 0x{vfs_start:x}: expected a multiple of 0x1000 below the flash size"
        )
    return (flash_size - vfs_start) // FS_BLOCK


def littlefs_image(block_count: int, mount: bool = True):
    """A littlefs-python file system in RAM with MicroPython's lfs2 settings (block 4096,
    read/prog size 32, lookahead 32): what the firmware mounts as its vfs partition."""
    import littlefs

    return littlefs.LittleFS(
        block_size=FS_BLOCK,
        block_count=block_count,
        read_size=32,
        prog_size=32,
        lookahead_size=32,
        name_max=255,
        mount=mount,
    )


def check_fs_image(path: Path, block_count: int) -> None:
    """Refuse an image whose size does not match the partition (the firmware would not mount it)."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from e
    want = block_count * FS_BLOCK
    if size != want:
        raise Refused(
            f"{path}: {size} bytes ({size / FS_BLOCK:g} blocks) but the vfs partition is "
            f"{want} bytes ({block_count} blocks of 4096); rebuild it with the board's --flash-size"
        )
    import littlefs

    fs = littlefs_image(block_count, mount=False)
    fs.context.buffer[:] = path.read_bytes()
    try:
        fs.mount()
    except littlefs.errors.LittleFSError as e:
        raise Refused(f"{path}: not a LittleFS image of {block_count} blocks ({e})") from None


def cmd_flash(args) -> int:
    fw = Path(args.fw) if args.fw else None
    fs = Path(args.fs) if args.fs else None
    # Checked before anything else: esptool given no port probes every serial port and would
    # erase whichever board answers first.
    port = require_port(args.port, must_exist=not args.dry_run)
    if fw is None and fs is None:
        raise Refused("flash: give --fw firmware.bin and/or --fs image")
    if fw is not None and not fw.is_file():
        raise Refused(f"--fw {fw}: " + ("not a regular file" if fw.exists() else "no such file"))
    chip = chip_by_key(args.chip) if args.chip else None
    if chip is None and fw is not None:
        chip = image_chip(fw)
        log(f"{fw}: image for {chip.name}")
    detected_size = None
    if not args.dry_run:
        argv = detect_argv(port)
        log("$ " + shlex.join(argv))
        r = run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise ToolFailed(f"esptool could not talk to a board on {port}")
        board = parse_chip_report(r.stdout + r.stderr)
        detected_size = parse_flash_size(r.stdout + r.stderr)
        log(
            f"board on {port}: {board.name}"
            + (f", {detected_size // 1048576}MB flash" if detected_size else "")
        )
        if chip is not None and chip != board:
            if args.chip:
                raise Refused(f"--chip {chip.key}: the board on {port} is {board.name}")
            raise Refused(
                f"{fw}: image built for {chip.name} but the board on {port} is {board.name}; "
                f"download the {board.name} build of MicroPython"
            )
        chip = board
    if chip is None:
        raise Refused("flash --dry-run --fs: give --chip")
    if fw is not None:
        check_image_for(chip, fw)
    if fs is not None:
        flash_size = (
            parse_size(args.flash_size, "--flash-size") if args.flash_size else detected_size
        )
        if flash_size is None:
            raise Refused("flash --fs: give --flash-size (4MB, 8MB, 16MB)")
        if detected_size and flash_size != detected_size:
            raise Refused(
                f"--flash-size {args.flash_size}: the board has {detected_size // 1048576}MB"
            )
        check_fs_image(fs, vfs_geometry(flash_size))
    steps = flash_plan(chip, port, fw, fs, erase=not args.no_erase, baud=args.baud)
    if args.dry_run:
        for alternatives in steps:
            log(shlex.join(alternatives[0]))
            for alt in alternatives[1:]:
                log("  on failure: " + shlex.join(alt))
        return EXIT_OK
    run_flash_plan(steps)
    log("flashed; the board was hard-reset by esptool")
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser(
        "flash", help="erase and write MicroPython (and/or a filesystem image) with esptool"
    )
    s.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM3")
    s.add_argument(
        "--fw", "--firmware", dest="fw", help="MicroPython .bin (or a factory image from provision)"
    )
    s.add_argument("--fs", help="LittleFS image to write at 0x200000 (from provision)")
    s.add_argument("--flash-size", help="board flash size for --fs, e.g. 4MB (default: detected)")
    s.add_argument("--chip", help=f"skip detection: {', '.join(CHIPS)}")
    s.add_argument(
        "--baud", type=baud_rate, default=DEFAULT_BAUD, help="write speed; falls back to 115200"
    )
    s.add_argument(
        "--no-erase", action="store_true", help="keep the rest of the flash (and the filesystem)"
    )
    s.add_argument(
        "--dry-run", action="store_true", help="print the esptool commands, touch nothing"
    )
    s.set_defaults(func=cmd_flash)
