"""nodectl provision: per-node configs from a fleet file, LittleFS images that the MicroPython
firmware mounts with its vfs partition geometry, factory images from esptool merge-bin."""

import hashlib
import json

import pytest
from tools_util import (
    REPO,
    Project,
    fake_firmware,
    mount_image,
    nodectl,
    run_nodectl,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fleet_doc(**over):
    doc = {
        "chip": "esp32",
        "unique": ["mqtt.client_id", "topic"],
        "template": {
            "version": 1,
            "board": "esp32-devkitc",
            "topic": "home/{room}/{id}",
            "area": "{room}",
            "wifi": [{"ssid": "home"}],
            "mqtt": {"host": "192.168.1.10", "client_id": "{id}"},
            "sensors": [{"type": "bme280", "address": "0x76"}],
        },
        "secrets": {"wifi": [{"ssid": "home", "password": "pw-{id}-123"}]},
        "nodes": [
            {"id": "kitchen-1", "room": "kitchen"},
            {"id": "garden-1", "room": "garden", "config": {"interval": 300}},
        ],
    }
    doc.update(over)
    return doc


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "project")


def provision(project, fleet, *extra):
    path = project.root / "fleet.json"
    path.write_text(json.dumps(fleet))
    out = project.root / "out"
    r = run_nodectl("provision", "--fleet", path, "--out", out, *project.build_args(), *extra)
    return r, out


def test_images_mount_with_the_partition_geometry_and_hold_exactly_the_fleet_files(project):
    r, out = provision(project, fleet_doc(), "--flash-size", "4MB")
    assert r.returncode == 0, r.stdout + r.stderr
    app = {
        p.relative_to(project.build).as_posix(): sha(p.read_bytes())
        for p in project.build.rglob("*")
        if p.is_file()
    }
    assert "lib/node/config.mpy" in app and "main.py" in app
    for nid, room in (("kitchen-1", "kitchen"), ("garden-1", "garden")):
        img = out / nid / "fs-4MB.img"
        assert img.stat().st_size == 512 * 4096 == 0x400000 - 0x200000
        seen = mount_image(img, 512)
        assert seen.get("error") is None
        assert seen["bsize"] == 4096 and seen["blocks"] == 512
        cfg_bytes = (out / nid / "config.json").read_bytes()
        sec_bytes = (out / nid / "secrets.json").read_bytes()
        assert seen["files"] == dict(
            app, **{"config.json": sha(cfg_bytes), "secrets.json": sha(sec_bytes)}
        )
        cfg = json.loads(cfg_bytes)
        assert cfg["mqtt"]["client_id"] == nid
        assert cfg["topic"] == f"home/{room}/{nid}" and cfg["area"] == room
        assert json.loads(sec_bytes)["wifi"][0]["password"] == f"pw-{nid}-123"
    assert json.loads((out / "garden-1" / "config.json").read_text())["interval"] == 300


def test_the_firmware_refuses_any_other_block_count(project):
    # Why the size must be exact: lfs2 checks the superblock's count against the partition.
    r, out = provision(project, fleet_doc(), "--flash-size", "4MB", "--node", "kitchen-1")
    assert r.returncode == 0, r.stderr
    img = out / "kitchen-1" / "fs-4MB.img"
    assert mount_image(img, 1536) == {"error": 22}  # EINVAL, as on an 8 MiB board
    assert mount_image(img, 511) == {"error": 22}


@pytest.mark.parametrize(("size", "blocks"), [("4MB", 512), ("8MB", 1536), ("16MB", 3584)])
def test_block_count_follows_the_flash_size(size, blocks):
    assert nodectl.flash.vfs_geometry(nodectl.flash.parse_size(size, "--flash-size")) == blocks


def test_8mb_image_mounts_with_1536_blocks(project):
    r, out = provision(project, fleet_doc(), "--flash-size", "8MB", "--node", "garden-1")
    assert r.returncode == 0, r.stderr
    img = out / "garden-1" / "fs-8MB.img"
    assert img.stat().st_size == 1536 * 4096
    seen = mount_image(img, 1536)
    assert seen["blocks"] == 1536 and "config.json" in seen["files"]


@pytest.mark.parametrize("size", ["3MB", "2MB", "6MB", "lots"])
def test_a_flash_size_without_a_valid_vfs_is_refused(project, size):
    r, out = provision(project, fleet_doc(), "--flash-size", size)
    assert r.returncode == 1
    assert f"--flash-size {size}: expected" in r.stderr
    assert not out.exists()


def test_an_image_of_the_wrong_size_is_refused_before_flashing(project, tmp_path):
    r, out = provision(project, fleet_doc(), "--flash-size", "4MB", "--node", "kitchen-1")
    assert r.returncode == 0, r.stderr
    img = out / "kitchen-1" / "fs-4MB.img"
    r = run_nodectl(
        "flash",
        "--port",
        "/dev/null",
        "--chip",
        "esp32",
        "--fs",
        img,
        "--flash-size",
        "8MB",
        "--dry-run",
    )
    assert r.returncode == 1
    assert (
        "2097152 bytes (512 blocks) but the vfs partition is 6291456 bytes (1536 blocks" in r.stderr
    )
    r = run_nodectl(
        "flash",
        "--port",
        "/dev/null",
        "--chip",
        "esp32",
        "--fs",
        img,
        "--flash-size",
        "4MB",
        "--dry-run",
    )
    assert r.returncode == 0, r.stderr
    assert f"write-flash 0x200000 {img}" in r.stdout


def test_content_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(nodectl.common.Refused, match="do not fit in 8 blocks"):
        nodectl.provision.make_fs_image({"big.bin": bytes(64 * 1024)}, 8, tmp_path / "x.img")


def test_duplicate_client_ids_are_refused(project):
    nodes = [
        {"id": "a-1", "room": "x", "config": {"mqtt": {"host": "h", "client_id": "same"}}},
        {"id": "b-1", "room": "y", "config": {"mqtt": {"host": "h", "client_id": "same"}}},
    ]
    r, out = provision(project, fleet_doc(nodes=nodes))
    assert r.returncode == 1
    assert "nodes a-1 and b-1 share mqtt.client_id = 'same'; it must be unique" in r.stderr
    assert not out.exists()


def test_duplicate_node_ids_and_bad_placeholders_are_refused(project):
    r, _ = provision(project, fleet_doc(nodes=[{"id": "a", "room": "x"}, {"id": "a", "room": "y"}]))
    assert r.returncode == 1 and "nodes.1.id: 'a' is already used" in r.stderr
    tpl = dict(fleet_doc()["template"], name="{floor}")
    r, _ = provision(project, fleet_doc(template=tpl))
    assert r.returncode == 1 and "unknown placeholder {floor}" in r.stderr


def test_a_generated_config_the_device_would_reject_is_refused(project):
    nodes = [
        {"id": "k-1", "room": "kitchen"},
        {"id": "k-2", "room": "x", "config": {"interval": 0}},
    ]
    r, out = provision(project, fleet_doc(nodes=nodes))
    assert r.returncode == 1
    assert "node k-2 config.json: interval: expected an integer 1..86400, got 0" in r.stderr
    assert not out.exists()  # not even the valid node's image


def test_factory_image_merges_firmware_and_filesystem_at_their_offsets(project, tmp_path):
    fw = fake_firmware(tmp_path / "ESP32_GENERIC.bin", 0)
    r, out = provision(project, fleet_doc(), "--node", "kitchen-1", "--fw", fw)
    assert r.returncode == 0, r.stdout + r.stderr
    factory = (out / "kitchen-1" / "factory-esp32-4MB.bin").read_bytes()
    img = (out / "kitchen-1" / "fs-4MB.img").read_bytes()
    base = 0x1000  # the merged file starts at the firmware offset and is flashed there
    assert factory[: len(fw.read_bytes())] == fw.read_bytes()
    assert factory[0x200000 - base :] == img
    assert set(factory[len(fw.read_bytes()) : 0x200000 - base]) == {0xFF}
    assert "(flash at 0x1000)" in r.stdout


def test_firmware_for_another_chip_is_refused_in_provision(project, tmp_path):
    fw = fake_firmware(tmp_path / "ESP32_S3.bin", 9)
    r, _ = provision(project, fleet_doc(), "--fw", fw)
    assert r.returncode == 1
    assert "image built for ESP32-S3 but the board is ESP32" in r.stderr


def test_example_fleet_file_provisions(tmp_path):
    r = run_nodectl(
        "provision",
        "--fleet",
        REPO / "tools" / "fleet.example.json",
        "--out",
        tmp_path / "out",
        "--build-dir",
        tmp_path / "build",
        "--version",
        "ex",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "garden-1",
        "kitchen-1",
        "living-1",
    ]


def test_chip_and_flash_size_come_from_the_board_definition(project, tmp_path):
    # boards/esp32-s3-devkitc.json: "chip": "esp32s3", "flash_size_mb": 8
    tpl = dict(fleet_doc()["template"], board="esp32-s3-devkitc")
    fleet = fleet_doc(template=tpl, chip=None, nodes=[{"id": "s3-1", "room": "lab"}])
    fw_c3 = fake_firmware(tmp_path / "c3.bin", 5)
    r, out = provision(project, fleet, "--fw", fw_c3)
    assert r.returncode == 1
    assert (
        "node s3-1: " in r.stderr
        and "image built for ESP32-C3 but the board is ESP32-S3" in r.stderr
    )
    fw = fake_firmware(tmp_path / "s3.bin", 9)
    r, out = provision(project, fleet, "--fw", fw)
    assert r.returncode == 0, r.stdout + r.stderr
    img = out / "s3-1" / "fs-8MB.img"
    assert img.stat().st_size == 1536 * 4096
    factory = (out / "s3-1" / "factory-esp32s3-8MB.bin").read_bytes()
    assert factory[:16] == fw.read_bytes()[:16] and factory[0x200000:] == img.read_bytes()
    assert "(flash at 0x0)" in r.stdout


def test_ota_secret_puts_each_nodes_own_key_into_its_image(project):
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    from nodectl import bundle

    secret = project.root / "fleet.secret"
    secret.write_text("  0123456789abcdef-fleet  \n")  # whitespace around it is not the secret
    r, out = provision(project, fleet_doc(), "--ota-secret", secret)
    assert r.returncode == 0, r.stdout + r.stderr
    keys = {}
    for nid, room in (("kitchen-1", "kitchen"), ("garden-1", "garden")):
        seen = mount_image(out / nid / "fs-4MB.img", 512)
        want = bundle.node_key(b"0123456789abcdef-fleet", f"home/{room}/{nid}")
        assert seen["files"]["ota.key"] == sha(want)
        keys[nid] = want
    assert keys["kitchen-1"] != keys["garden-1"]  # one node's flash opens no other node
    # the same key as `bundle --key-for` writes for the same node
    one = project.root / "one.key"
    r = run_nodectl("bundle", "--key-for", "home/garden/garden-1", "--secret", secret, "--out", one)
    assert r.returncode == 0, r.stdout + r.stderr
    assert one.read_bytes() == keys["garden-1"]


def test_ota_secret_that_is_missing_is_one_line_and_nothing_is_written(project):
    r, out = provision(project, fleet_doc(), "--ota-secret", project.root / "nope.secret")
    assert r.returncode == 1
    assert "nope.secret: cannot read the fleet secret" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
