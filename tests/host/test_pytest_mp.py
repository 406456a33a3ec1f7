"""Self-test of the MicroPython pytest plugin: it must report what really happened.

A throw-away test tree with an `mp/` folder is run by a child pytest; its JUnit XML says which
items passed and failed and with what text.
"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_mp import compile_lib, micropython_bin

TESTS = Path(__file__).resolve().parent.parent

SAMPLE = """\
TIMEOUT = 3


def _helper():
    return 1


def test_passes():
    assert _helper() == 1


def test_fails_with_traceback():
    x = 2
    assert x == 3, "x is two"


def test_never_returns():
    while True:
        pass


def test_exits_early():
    import sys
    sys.exit(0)


def test_big_allocation():
    b = bytearray(200 * 1024)
    assert len(b) == 200 * 1024


def test_skips():
    class SkipTest(Exception):
        pass
    raise SkipTest("no TLS here")
"""


def _run(tmp_path: Path, *args: str) -> tuple[dict[str, tuple[str, str]], str]:
    (tmp_path / "mp").mkdir()
    (tmp_path / "mp" / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\npytest_plugins = ['pytest_mp']\n"
    )
    xml = tmp_path / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={xml}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                text = (child.get("message") or "") + "\n" + (child.text or "")
        results[case.get("name")] = (outcome, text)
    return results, proc.stdout


def test_each_function_is_an_item_and_outcomes_are_true(tmp_path):
    results, out = _run(tmp_path)
    assert set(results) == {
        "test_passes",
        "test_fails_with_traceback",
        "test_never_returns",
        "test_exits_early",
        "test_big_allocation",
        "test_skips",
    }, out
    assert results["test_passes"][0] == "passed"
    assert results["test_big_allocation"][0] == "passed"
    outcome, text = results["test_fails_with_traceback"]
    assert outcome == "failed"
    # The MicroPython traceback, with file and line of the failing assert.
    assert 'test_sample.py", line 14, in test_fails_with_traceback' in text, text
    assert "AssertionError: x is two" in text
    outcome, text = results["test_never_returns"]
    assert outcome == "failed" and "timed out after 3 s" in text
    outcome, text = results["test_exits_early"]
    assert outcome == "failed" and "before the test finished" in text
    outcome, text = results["test_skips"]
    assert outcome == "skipped" and "no TLS here" in text


def test_heap_limit_makes_big_allocations_fail(tmp_path):
    results, out = _run(tmp_path, "--mp-heap=64K", "-k", "big_allocation or passes")
    assert results["test_passes"][0] == "passed", out
    outcome, text = results["test_big_allocation"]
    assert outcome == "failed" and "MemoryError" in text


def test_compiled_mode_builds_importable_mpy(tmp_path):
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "mod.py").write_text("def answer():\n    return 42\n")
    dst = tmp_path / "out"
    assert compile_lib(tmp_path / "src", dst) == 2
    assert (dst / "pkg" / "mod.mpy").read_bytes()[:1] == b"M"
    proc = subprocess.run(
        [micropython_bin(), "-c", "import pkg.mod, sys; print(pkg.mod.__file__, pkg.mod.answer())"],
        env={"MICROPYPATH": str(dst)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.stdout.split() == [f"{dst}/pkg/mod.mpy", "42"], proc.stdout + proc.stderr
    # A deleted source takes its stale .mpy with it.
    (src / "mod.py").unlink()
    compile_lib(tmp_path / "src", dst)
    assert not (dst / "pkg" / "mod.mpy").exists()
