"""nodectl deploy: check the config, hash what the board holds, copy only what changed with
mpremote, remove what we no longer ship under lib/, verify, restart.

    python tools/nodectl deploy --port /dev/ttyUSB0 --config config.json --secrets secrets.json
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nodectl.build import fresh_build
from nodectl.bundle import OTA_KEY, node_key, read_secret
from nodectl.common import (
    EXIT_OK,
    EXIT_REFUSED,
    Refused,
    ToolFailed,
    add_build_options,
    log,
    positive,
    require_port,
    run,
    tool_argv,
)
from nodectl.configcheck import check

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


def ota_key_file(secret: Path, config: Path, build_dir: Path) -> Path:
    """This node's update key (from the fleet secret and the config's base topic), written
    next to the build so it is copied like any other file."""
    topic = json.loads(config.read_text()).get("topic")
    if not isinstance(topic, str) or not topic:
        raise Refused(f"--ota-secret: {config} has no topic to derive the node's key from")
    out = build_dir.parent / (build_dir.name + "." + OTA_KEY)
    out.write_bytes(node_key(read_secret(secret), topic))
    return out


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


# What mpremote says when the board went away or stopped answering while it soft-reset it: a
# board whose boot.py/main.py resets it, or a USB-serial chip that re-enumerates.
_GONE = ("could not enter raw repl", "Input/output error", "returned no data", "Errno 5")


def mpremote_failure(port: str, output: str, stage: str) -> ToolFailed:
    """One line for a failed mpremote run (its last error line, not its traceback), with what
    to try; NODECTL_VERBOSE=1 shows mpremote's whole output too."""
    lines = [x.strip() for x in output.strip().splitlines() if x.strip()]
    last = lines[-1] if lines else "no output"
    if os.environ.get("NODECTL_VERBOSE"):
        sys.stderr.write(output.rstrip() + "\n")
    if any(g in output for g in _GONE):
        return ToolFailed(
            f"the board on {port} went away or stopped answering {stage} ({last}); "
            "if it resets itself on mpremote's soft reset, try again with --resume "
            "(make deploy RESUME=1)"
        )
    if "failed to access" in output:
        return ToolFailed(f"cannot open {port} {stage}: is a console or monitor using it?")
    return ToolFailed(f"mpremote failed on {port} {stage}: {last}")


def cmd_deploy(args) -> int:
    t0 = time.monotonic()
    port = require_port(args.port)
    lib = Path(args.lib)
    config = Path(args.config)
    secrets = Path(args.secrets) if args.secrets else None
    code, out = check(lib, config, secrets)
    if code != 0:
        print(out, file=sys.stderr)
        log(f"deploy refused: {config} is not valid; nothing was copied")
        return EXIT_REFUSED
    log(f"{config}: OK")
    build_dir = fresh_build(args, lib)
    local = local_manifest(build_dir, config, secrets)
    if args.ota_secret:
        local[OTA_KEY] = ota_key_file(Path(args.ota_secret), config, build_dir)
    root_files = [p for p in local if "/" not in p]

    listing = mpremote_argv(port, args.resume) + ["exec", device_hash_script(root_files)]
    r = run(listing, capture_output=True, text=True, timeout=args.timeout)
    if r.returncode != 0:
        raise mpremote_failure(port, r.stdout + r.stderr, "while listing its files")
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
    argv = deploy_argvs(port, plan, local, resume=args.resume, restart=restart)
    if argv is not None:
        r = run(argv, capture_output=True, text=True, timeout=args.timeout)
        if r.returncode != 0:
            raise mpremote_failure(port, r.stdout + r.stderr, "while copying")
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
        f"deployed to {port}: {len(plan.copy)} copied ({sent} bytes), "
        f"{len(plan.remove)} removed, "
        f"{len(plan.unchanged)} unchanged in {took:.1f} s; "
        + ("board reset, main.py starts" if restart else f"not restarted ({why_not})")
    )
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser(
        "deploy", help="validate the config, copy changed files with mpremote, restart"
    )
    s.add_argument("--port", required=True, help="serial port of the board")
    s.add_argument("--config", required=True, help="config.json for this node")
    s.add_argument("--secrets", help="secrets.json for this node")
    add_build_options(s)
    s.add_argument(
        "--resume",
        action="store_true",
        help="do not soft-reset on connecting (for a board that resets on soft reset, "
        "and the Unix port on a pty)",
    )
    s.add_argument(
        "--no-restart",
        action="store_true",
        help="leave the board at the REPL instead of hard-resetting it",
    )
    s.add_argument(
        "--ota-secret",
        metavar="FILE",
        help="the fleet's signing secret: also copy this node's ota.key (over-the-air updates)",
    )
    s.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    s.add_argument("--timeout", type=positive, default=120.0, help="seconds per mpremote run")
    s.set_defaults(func=cmd_deploy)
