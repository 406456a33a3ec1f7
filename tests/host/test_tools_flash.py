"""nodectl flash without hardware: the esptool argv per chip, offsets, image checks, baud fallback.

What cannot run here: talking to a real ROM bootloader. The end-to-end CLI tests use a stand-in
esptool ($NODECTL_ESPTOOL) that answers `flash-id` like esptool 5 and records every call."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tools_util import fake_firmware, nodectl, run_nodectl

OFFSETS = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
    "esp32c5": 0x2000,
    "esp32p4": 0x2000,
}
# Chip ids of the ESP image header, as esptool's targets define IMAGE_CHIP_ID.
IMAGE_IDS = {
    "esp32": 0,
    "esp32s2": 2,
    "esp32s3": 9,
    "esp32c3": 5,
    "esp32c6": 13,
    "esp32c5": 23,
    "esp32p4": 18,
}
NAMES = {
    "esp32": "ESP32",
    "esp32s2": "ESP32-S2",
    "esp32s3": "ESP32-S3",
    "esp32c3": "ESP32-C3",
    "esp32c6": "ESP32-C6",
    "esp32c5": "ESP32-C5",
    "esp32p4": "ESP32-P4",
}

FAKE_ESPTOOL = """\
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if "flash-id" in sys.argv:
    print("esptool v5.6.0")
    port = sys.argv[sys.argv.index("--port") + 1]
    print("Connected to " + os.environ["FAKE_CHIP"] + " on " + port)
    print("Detecting chip type... " + os.environ["FAKE_CHIP"])
    print("Chip type:          " + os.environ.get("FAKE_DESC", os.environ["FAKE_CHIP"]))
    print("Detected flash size: " + os.environ.get("FAKE_SIZE", "4MB"))
failing = os.environ.get("FAKE_FAIL_BAUD", "").split(",")
if "write-flash" in sys.argv and sys.argv[sys.argv.index("--baud") + 1] in failing:
    print("A fatal error occurred: Serial data stream stopped", file=sys.stderr)
    sys.exit(2)
"""


@pytest.mark.parametrize("chip", sorted(OFFSETS))
def test_argv_and_offset_per_chip(chip, tmp_path):
    fw = tmp_path / "fw.bin"
    c = nodectl.flash.chip_by_key(chip)
    steps = nodectl.flash.flash_plan(c, "/dev/ttyUSB0", fw, esptool=["esptool"])
    assert steps == [
        [["esptool", "--chip", chip, "--port", "/dev/ttyUSB0", "erase-flash"]],
        [
            [
                "esptool",
                "--chip",
                chip,
                "--port",
                "/dev/ttyUSB0",
                "--baud",
                "460800",
                "write-flash",
                hex(OFFSETS[chip]),
                str(fw),
            ],
            [
                "esptool",
                "--chip",
                chip,
                "--port",
                "/dev/ttyUSB0",
                "--baud",
                "115200",
                "write-flash",
                hex(OFFSETS[chip]),
                str(fw),
            ],
        ],
    ]


@pytest.mark.parametrize("chip", sorted(OFFSETS))
def test_image_header_names_the_chip_as_esptool_reads_it(chip, tmp_path):
    fw = fake_firmware(tmp_path / "fw.bin", IMAGE_IDS[chip])
    assert nodectl.flash.image_chip(fw).key == chip
    # Cross-check the crafted header with esptool's own reader.
    r = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(fw)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"Detected image type: {NAMES[chip]}\n" in r.stdout


def test_firmware_plus_filesystem_in_one_write(tmp_path):
    c = nodectl.flash.chip_by_key("esp32s3")
    steps = nodectl.flash.flash_plan(
        c, "P", Path("fw.bin"), Path("fs.img"), erase=False, baud=921600, esptool=["esptool"]
    )
    assert steps == [
        [
            [
                "esptool",
                "--chip",
                "esp32s3",
                "--port",
                "P",
                "--baud",
                "921600",
                "write-flash",
                "0x0",
                "fw.bin",
                "0x200000",
                "fs.img",
            ],
            [
                "esptool",
                "--chip",
                "esp32s3",
                "--port",
                "P",
                "--baud",
                "115200",
                "write-flash",
                "0x0",
                "fw.bin",
                "0x200000",
                "fs.img",
            ],
        ]
    ]


def test_write_falls_back_to_a_lower_baud_and_fails_when_all_do():
    calls = []
    steps = nodectl.flash.flash_plan(
        nodectl.flash.CHIPS["esp32"], "P", Path("fw.bin"), esptool=["e"]
    )
    nodectl.flash.run_flash_plan(
        steps, runner=lambda argv: calls.append(argv) or (1 if "460800" in argv else 0)
    )
    assert calls[0][-1] == "erase-flash" and len(calls) == 3
    assert [a[a.index("--baud") + 1] for a in calls[1:]] == ["460800", "115200"]
    with pytest.raises(nodectl.common.ToolFailed, match="esptool failed"):
        nodectl.flash.run_flash_plan(steps, runner=lambda argv: 0 if "erase-flash" in argv else 2)


@pytest.mark.parametrize(
    ("text", "chip"),
    [
        (
            "Detecting chip type... ESP32\nChip type:          ESP32-D0WD-V3 (revision v3.1)",
            "esp32",
        ),
        ("Detecting chip type... ESP32\nChip type:          ESP32-S0WD (revision v1.0)", "esp32"),
        ("Chip type:          ESP32-PICO-D4 (revision v1.0)", "esp32"),
        (
            "Detecting chip type... ESP32-S3\nChip type:          ESP32-S3 (QFN56) (revision v0.2)",
            "esp32s3",
        ),
        ("Detecting chip type... ESP32-C3\n", "esp32c3"),
        ("Detecting chip type... ESP32-C6\n", "esp32c6"),
    ],
)
def test_chip_report_parsing(text, chip):
    assert nodectl.flash.parse_chip_report(text).key == chip


def test_unsupported_or_missing_chip_report():
    with pytest.raises(nodectl.common.Refused, match="ESP32-H2, which nodectl does not support"):
        nodectl.flash.parse_chip_report("Detecting chip type... ESP32-H2")
    with pytest.raises(nodectl.common.ToolFailed):
        nodectl.flash.parse_chip_report("A fatal error occurred: Failed to connect")


def test_not_an_esp_image_is_refused(tmp_path):
    junk = tmp_path / "firmware.uf2"
    junk.write_bytes(b"UF2\n" + bytes(100))
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", junk, "--dry-run")
    assert r.returncode == 1
    assert "not an ESP firmware image (magic byte 0xe9 expected at offset 0, got 0x55)" in r.stderr


def test_dry_run_reads_the_chip_from_the_image(tmp_path):
    fw = fake_firmware(tmp_path / "ESP32_GENERIC_C3.bin", 5)
    r = run_nodectl("flash", "--port", "/dev/ttyACM0", "--fw", fw, "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{fw}: image for ESP32-C3"
    assert lines[1].endswith("--chip esp32c3 --port /dev/ttyACM0 erase-flash")
    assert lines[2].endswith(
        f"--chip esp32c3 --port /dev/ttyACM0 --baud 460800 write-flash 0x0 {fw}"
    )
    assert lines[3].startswith("  on failure: ") and "--baud 115200" in lines[3]


def test_image_for_another_chip_is_refused_with_chip_given(tmp_path):
    fw = fake_firmware(tmp_path / "ESP32_GENERIC_S3.bin", 9)
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", fw, "--chip", "esp32", "--dry-run")
    assert r.returncode == 1
    assert "image built for ESP32-S3 but the board is ESP32; download the ESP32 build" in r.stderr


def serial_ports(tmp_path):
    """Two stand-ins for serial ports that exist (nodectl refuses a port path that does not)."""
    d = tmp_path / "dev"
    d.mkdir(exist_ok=True)
    for name in ("ttyUSB0", "ttyACM0"):
        (d / name).touch()
    return str(d / "ttyUSB0"), str(d / "ttyACM0")


@pytest.fixture
def fake_esptool(tmp_path, monkeypatch):
    script = tmp_path / "fake_esptool.py"
    script.write_text(FAKE_ESPTOOL)
    log = tmp_path / "esptool.log"
    monkeypatch.setenv("NODECTL_ESPTOOL", f"{sys.executable} {script}")
    monkeypatch.setenv("FAKE_LOG", str(log))

    def calls():
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    return calls


def test_flash_detects_board_erases_writes_and_falls_back(tmp_path, fake_esptool, monkeypatch):
    USB, ACM = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32")
    monkeypatch.setenv("FAKE_DESC", "ESP32-D0WD-V3 (revision v3.1)")
    monkeypatch.setenv("FAKE_FAIL_BAUD", "460800")
    fw = fake_firmware(tmp_path / "fw.bin", 0)
    r = run_nodectl("flash", "--port", USB, "--fw", fw)
    assert r.returncode == 0, r.stdout + r.stderr
    assert fake_esptool() == [
        ["--port", USB, "flash-id"],
        ["--chip", "esp32", "--port", USB, "erase-flash"],
        [
            "--chip",
            "esp32",
            "--port",
            USB,
            "--baud",
            "460800",
            "write-flash",
            "0x1000",
            str(fw),
        ],
        [
            "--chip",
            "esp32",
            "--port",
            USB,
            "--baud",
            "115200",
            "write-flash",
            "0x1000",
            str(fw),
        ],
    ]
    assert "retrying at a lower baud rate" in r.stdout


def test_flash_refuses_an_image_for_another_chip_before_erasing(
    tmp_path, fake_esptool, monkeypatch
):
    USB, ACM = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32-C3")
    fw = fake_firmware(tmp_path / "fw.bin", 0)  # built for the ESP32
    r = run_nodectl("flash", "--port", USB, "--fw", fw)
    assert r.returncode == 1
    # The user named no chip: the message names the image, not an option never given.
    assert f"{fw}: image built for ESP32 but the board on {USB} is ESP32-C3" in r.stderr
    assert "--chip" not in r.stderr
    assert fake_esptool() == [["--port", USB, "flash-id"]]


def test_flash_fails_with_exit_3_when_every_baud_fails(tmp_path, fake_esptool, monkeypatch):
    USB, ACM = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32-S3")
    monkeypatch.setenv("FAKE_FAIL_BAUD", "460800,115200")
    fw = fake_firmware(tmp_path / "fw.bin", 9)
    r = run_nodectl("flash", "--port", ACM, "--fw", fw, "--no-erase")
    assert r.returncode == 3
    assert "esptool failed" in r.stderr
    writes = [c for c in fake_esptool() if "write-flash" in c]
    assert [c[c.index("--baud") + 1] for c in writes] == ["460800", "115200"]
    assert not [c for c in fake_esptool() if "erase-flash" in c]


def test_filesystem_image_checked_against_the_detected_flash_size(
    tmp_path, fake_esptool, monkeypatch
):
    USB, ACM = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32")
    monkeypatch.setenv("FAKE_SIZE", "8MB")
    img = tmp_path / "fs-4MB.img"
    nodectl.provision.make_fs_image({"config.json": b"{}"}, 512, img)
    r = run_nodectl("flash", "--port", USB, "--fs", img, "--no-erase")
    assert r.returncode == 1
    assert "(512 blocks) but the vfs partition is 6291456 bytes (1536 blocks of 4096)" in r.stderr
    assert len(fake_esptool()) == 1  # only the detection ran


def test_cli_errors_say_what_and_where(tmp_path):
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", "x.bin", "--baud", "fast")
    assert r.returncode == 2
    assert "argument --baud: expected a baud rate 9600..3000000, got 'fast'" in r.stderr
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", "/nonexistent/fw.bin")
    assert r.returncode == 1 and "--fw /nonexistent/fw.bin: no such file" in r.stderr
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", "/dev/null")
    assert r.returncode == 1 and "--fw /dev/null: not a regular file" in r.stderr
    fw = fake_firmware(tmp_path / "fw.bin", 0)
    r = run_nodectl("flash", "--port", "/dev/null", "--fw", fw, "--chip", "esp8266")
    assert r.returncode == 1 and "--chip esp8266: expected one of esp32, esp32s2" in r.stderr
    r = run_nodectl("frobnicate")
    assert r.returncode == 2 and "invalid choice: 'frobnicate'" in r.stderr


def test_folder_and_module_forms_both_run(tmp_path):
    """`python tools/nodectl` from anywhere, `python -m nodectl` from tools/ (no make)."""
    repo = nodectl.common.REPO
    for argv, cwd in (
        ([sys.executable, "tools/nodectl", "--help"], repo),
        ([sys.executable, str(repo / "tools" / "nodectl"), "--help"], tmp_path),
        ([sys.executable, "-m", "nodectl", "--help"], repo / "tools"),
        ([sys.executable, "-m", "tools.nodectl", "--help"], repo),
    ):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30)
        assert r.returncode == 0 and "exit codes:" in r.stdout, (argv, r.stderr)


def test_provision_flash_writes_firmware_and_the_nodes_image(tmp_path, fake_esptool, monkeypatch):
    from tools_util import Project

    USB, ACM = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32")
    p = Project(tmp_path / "p")
    fleet = tmp_path / "fleet.json"
    tpl = json.loads(p.config.read_text())
    tpl["mqtt"]["client_id"] = "{id}"
    fleet.write_text(
        json.dumps(
            {
                "template": tpl,
                "secrets": json.loads(p.secrets.read_text()),
                "nodes": [{"id": "n-1"}, {"id": "n-2"}],
            }
        )
    )
    fw = fake_firmware(tmp_path / "fw.bin", 0)
    out = tmp_path / "out"
    args = [
        "provision",
        "--fleet",
        fleet,
        "--out",
        out,
        *p.build_args(),
        "--fw",
        fw,
        "--flash",
        "--port",
        USB,
    ]
    r = run_nodectl(*args)
    assert r.returncode == 1 and "choose the one board's node with --node ID" in r.stderr
    r = run_nodectl(*args, "--node", "n-2")
    assert r.returncode == 0, r.stdout + r.stderr
    calls = fake_esptool()
    img = out / "n-2" / "fs-4MB.img"
    assert calls[0][:3] == ["--chip", "esp32", "merge-bin"]
    assert calls[1:] == [
        ["--port", USB, "flash-id"],
        ["--chip", "esp32", "--port", USB, "erase-flash"],
        [
            "--chip",
            "esp32",
            "--port",
            USB,
            "--baud",
            "460800",
            "write-flash",
            "0x1000",
            str(fw),
            "0x200000",
            str(img),
        ],
    ]
    assert not (out / "n-1").exists()


def test_an_empty_or_missing_port_is_refused_before_esptool_runs(tmp_path, fake_esptool):
    # esptool given `--port ""` probes every serial port and erases whichever board answers.
    fw = fake_firmware(tmp_path / "fw.bin", 0)
    for port in ("", "  "):
        r = run_nodectl("flash", "--port", port, "--fw", fw)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "--port: no serial port given (PORT= is empty)" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = run_nodectl("flash", "--port", tmp_path / "ttyUSB9", "--fw", fw)
    assert r.returncode == 1 and f"--port {tmp_path / 'ttyUSB9'}: no such serial port" in r.stderr
    r = run_nodectl("provision", "--fleet", tmp_path / "f.json", "--flash", "--port", "")
    assert r.returncode == 1 and "no serial port given" in r.stderr
    assert fake_esptool() == []


def test_a_chip_named_on_the_command_line_is_blamed_when_it_does_not_match(
    tmp_path, fake_esptool, monkeypatch
):
    USB, _ = serial_ports(tmp_path)
    monkeypatch.setenv("FAKE_CHIP", "ESP32-S3")
    fw = fake_firmware(tmp_path / "fw.bin", 0)
    r = run_nodectl("flash", "--port", USB, "--fw", fw, "--chip", "esp32")
    assert r.returncode == 1
    assert f"--chip esp32: the board on {USB} is ESP32-S3" in r.stderr
    assert fake_esptool() == [["--port", USB, "flash-id"]]
