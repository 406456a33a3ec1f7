"""A MicroPython Unix port attached to a pseudo-terminal, standing in for an ESP32 on a serial port.

The interpreter gets the pty's master end as stdin/stdout/stderr; the slave end is put in raw mode
(`tty.setraw`, no echo, no CR/LF rewriting) and its path (`/dev/pts/N`) is what a serial tool such
as mpremote opens, exactly as it would open `/dev/ttyUSB0`. The interpreter's working directory is
the device "root", so the device paths our tools use (`lib/node/app.mpy`, `config.json`, always
relative) land in `root`. We keep a slave descriptor open for the device's lifetime: when the last
slave closes Linux makes reads on the master fail with EIO and the interpreter would exit between
two mpremote runs.

Limits, because this is not an ESP32: `mpremote` must be told `resume` (its soft reset, Ctrl-D in
the raw REPL, ends the Unix process), `machine.reset()` does not exist, and absolute device paths
would reach the host's own `/`.

    dev = PtyDevice(tmp_path / "root").start()
    subprocess.run(["mpremote", "connect", dev.port, "resume", "exec", "print(1)"])
    dev.stop()

As a pytest fixture: `from ptydevice import pty_device` in a test module, then take `pty_device`.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
# The one finder of the Unix port (this venv's, else PATH), shared with nodectl and the sim.
from nodectl.common import find_micropython  # noqa: E402


class PtyDevice:
    def __init__(self, root: Path | str, micropython: str | None = None, env: dict | None = None):
        self.root = Path(root)
        self.micropython = micropython or find_micropython()
        self.env = dict(os.environ if env is None else env)
        # sys.path as on the board: '' (the root) and lib, relative to the root.
        self.env.setdefault("MICROPYPATH", ":lib")
        self.proc: subprocess.Popen | None = None
        self._slave: int | None = None
        self.port = ""

    def start(self, ready_timeout: float = 10.0) -> PtyDevice:
        self.root.mkdir(parents=True, exist_ok=True)
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self.proc = subprocess.Popen(
            [self.micropython],
            stdin=master,
            stdout=master,
            stderr=master,
            cwd=self.root,
            env=self.env,
            close_fds=True,
            start_new_session=True,  # the pty is not its controlling terminal's job
        )
        os.close(master)
        self._slave = slave
        self._wait_banner(ready_timeout)
        return self

    def _wait_banner(self, timeout: float) -> None:
        # Read the banner and first prompt so the next tool starts on a quiet line.
        assert self._slave is not None
        os.set_blocking(self._slave, False)
        seen = b""
        deadline = time.monotonic() + timeout
        try:
            while b">>> " not in seen:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no REPL prompt from {self.micropython}: {seen!r}")
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"micropython exited ({self.proc.returncode}): {seen!r}")
                try:
                    seen += os.read(self._slave, 4096)
                except BlockingIOError:
                    time.sleep(0.01)
        finally:
            os.set_blocking(self._slave, True)

    def write(self, data: bytes) -> None:
        """Type at the device's REPL, as a person on the serial console would."""
        assert self._slave is not None
        os.write(self._slave, data)

    def drain(self, quiet: float = 0.2, timeout: float = 5.0) -> bytes:
        """Read what the device printed until it has been quiet for `quiet` seconds."""
        assert self._slave is not None
        os.set_blocking(self._slave, False)
        out = b""
        last = time.monotonic()
        deadline = last + timeout
        try:
            while time.monotonic() - last < quiet and time.monotonic() < deadline:
                try:
                    chunk = os.read(self._slave, 4096)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                except OSError:
                    break
                out += chunk
                last = time.monotonic()
        finally:
            os.set_blocking(self._slave, True)
        return out

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def files(self) -> dict[str, bytes]:
        """Every file under the root, by device path, with its content."""
        out = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file():
                out[p.relative_to(self.root).as_posix()] = p.read_bytes()
        return out

    def __enter__(self) -> PtyDevice:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def pty_device(tmp_path):
    dev = PtyDevice(tmp_path / "device").start()
    try:
        yield dev
    finally:
        dev.stop()
