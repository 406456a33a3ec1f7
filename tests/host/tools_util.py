"""Helpers shared by the tests of tools/nodectl.py: run it as a user would, build small projects."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODECTL = REPO / "tools" / "nodectl.py"

sys.path.insert(0, str(REPO / "tools"))
import nodectl  # noqa: E402, F401  (the module under test, for its pure functions)

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
        shutil.copyfile(REPO / "lib" / "node" / "config.py", self.lib / "node" / "config.py")
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
            "--firmware",
            self.firmware,
            "--build-dir",
            self.build,
            "--version",
            "test-1",
        ]
