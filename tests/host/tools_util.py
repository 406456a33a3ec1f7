"""Helpers shared by the tests of tools/nodectl/: run it as a user would, build small projects."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODECTL = REPO / "tools" / "nodectl"

sys.path.insert(0, str(REPO / "tools"))
import nodectl  # noqa: E402  (the package under test, for its pure functions)
import nodectl.build  # noqa: E402
import nodectl.common  # noqa: E402
import nodectl.deploy  # noqa: E402
import nodectl.flash  # noqa: E402
import nodectl.monitor  # noqa: E402
import nodectl.package  # noqa: E402
import nodectl.provision  # noqa: E402, F401  (the tests reach the modules through nodectl.*)

GOOD_CONFIG = {
    "version": 1,
    "board": "esp32-devkitc",
    "topic": "home/kitchen",
    "wifi": [{"ssid": "home"}],
    "mqtt": {"host": "192.168.1.10", "client_id": "kitchen-1"},
    "sensors": [{"type": "bme280", "address": "0x76"}],
}
GOOD_SECRETS = {"wifi": [{"ssid": "home", "password": "secret123"}]}


def run_nodectl(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(NODECTL), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
    )


class Project:
    """A small device project: lib/ with the real config validator and a few modules of ours,
    firmware/ with boot.py and main.py, a config and secrets."""

    def __init__(self, root: Path):
        self.root = root
        self.lib = root / "lib"
        self.firmware = root / "firmware"
        self.build = root / "build"
        self.config = root / "config.json"
        self.secrets = root / "secrets.json"
        (self.lib / "node").mkdir(parents=True)
        # the validator and its file helpers
        for mod in ("config.py", "cfgfile.py", "jsoncheck.py", "cold.py", "commands.py"):
            shutil.copyfile(REPO / "lib" / "node" / mod, self.lib / "node" / mod)
        self.write("lib/node/__init__.py", "")
        self.write("lib/blink.py", "def on():\n    return 'blink on'\n")
        self.write("lib/extra/__init__.py", "")
        self.write("lib/extra/gone.py", "X = 1\n")
        self.write("firmware/boot.py", "# tiny boot\n")
        self.write("firmware/main.py", "import blink\nprint(blink.on())\n")
        self.set_config(GOOD_CONFIG)
        self.secrets.write_text(json.dumps(GOOD_SECRETS))

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def set_config(self, doc) -> None:
        self.config.write_text(json.dumps(doc))

    def build_args(self):
        return [
            "--lib",
            self.lib,
            "--root-dir",
            self.firmware,
            "--build-dir",
            self.build,
            "--version",
            "test-1",
        ]


def fake_firmware(path: Path, image_chip_id: int, size: int = 64 * 1024) -> Path:
    """A file that starts like a MicroPython .bin: the bootloader's ESP image header (magic 0xE9,
    segment count, flash mode, size/freq, entry point) and extended header with the chip id at
    file bytes 12..13 (little endian). The rest is filler, never run."""
    head = bytes([0xE9, 3, 0x02, 0x20]) + (0x40080000).to_bytes(4, "little")
    ext = bytes([0xEE, 0, 0, 0]) + image_chip_id.to_bytes(2, "little") + bytes([0])
    ext += (0).to_bytes(2, "little") + (0xFFFF).to_bytes(2, "little") + bytes(4) + bytes([1])
    body = bytes((i * 7 + 3) & 0xFF for i in range(size - len(head) - len(ext)))
    path.write_bytes(head + ext + body)
    return path


def mount_image(image: Path, block_count: int) -> dict:
    """Mount an image in the Unix port through a block device of block_count x 4096 (see
    mountimage.py); returns {"files": {path: sha256}, "blocks", "free"} or {"error": errno}."""
    from ptydevice import find_micropython

    r = subprocess.run(
        [
            find_micropython(),
            str(Path(__file__).with_name("mountimage.py")),
            str(image),
            str(block_count),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode in (0, 2), r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
