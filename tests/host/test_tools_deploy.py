"""nodectl deploy end to end: the real mpremote drives the Unix port attached to a pty."""

import json
import subprocess
import sys

import pytest
from ptydevice import PtyDevice
from tools_util import GOOD_CONFIG, REPO, Project, nodectl, run_nodectl

# build ships every real board's definition as lib/boards/<name>.json
BOARDS = {f"lib/boards/{b.name}" for b in (REPO / "boards").glob("*.json") if b.name != "sim.json"}


@pytest.fixture
def device(tmp_path):
    with PtyDevice(tmp_path / "device") as dev:
        yield dev


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "project")


def deploy(project, dev, *extra):
    return run_nodectl(
        "deploy",
        "--port",
        dev.port,
        "--config",
        project.config,
        "--secrets",
        project.secrets,
        *project.build_args(),
        "--resume",
        "--no-restart",
        *extra,
    )


def expected_files(project):
    out = {
        p.relative_to(project.build).as_posix(): p.read_bytes()
        for p in project.build.rglob("*")
        if p.is_file()
    }
    out["config.json"] = project.config.read_bytes()
    out["secrets.json"] = project.secrets.read_bytes()
    return out


def on_device(dev, code):
    r = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", dev.port, "resume", "exec", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_deploy_lands_compiled_files_config_and_version(project, device):
    r = deploy(project, device)
    assert r.returncode == 0, r.stdout + r.stderr
    files = device.files()
    assert files == expected_files(project)
    assert (
        set(files)
        == {
            "boot.py",
            "main.py",
            "version.json",
            "config.json",
            "secrets.json",
            "lib/blink.mpy",
            "lib/extra/__init__.mpy",
            "lib/extra/gone.mpy",
            "lib/node/__init__.mpy",
            "lib/node/cfgfile.mpy",
            "lib/node/cold.mpy",
            "lib/node/commands.mpy",
            "lib/node/config.mpy",
            "lib/node/jsoncheck.mpy",
            "lib/node/version.mpy",
        }
        | BOARDS
    )
    assert files["lib/blink.mpy"][:1] == b"M"  # mpy-cross output, not source
    assert json.loads(files["version.json"])["version"] == "test-1"
    assert f"{15 + len(BOARDS)} copied" in r.stdout
    # The compiled modules run on the device, and the node can report its version.
    out = on_device(
        device,
        "import blink\nfrom node import version\n"
        "print(blink.on(), version.VERSION, len(version.BUILD))",
    )
    assert out.split() == ["blink", "on", "test-1", "12"]


def test_second_deploy_copies_nothing(project, device):
    assert deploy(project, device).returncode == 0
    before = {p: (device.root / p).stat().st_mtime_ns for p in device.files()}
    r = deploy(project, device)
    assert r.returncode == 0, r.stderr
    assert f"{15 + len(BOARDS)} unchanged, 0 to copy, 0 to remove" in r.stdout
    assert {p: (device.root / p).stat().st_mtime_ns for p in device.files()} == before


def test_changed_module_is_the_only_code_copied(project, device):
    assert deploy(project, device).returncode == 0
    project.write("lib/blink.py", "def on():\n    return 'blink v2'\n")
    r = deploy(project, device)
    assert r.returncode == 0, r.stderr
    copied = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("copy ")}
    # The build stamp follows the content, so the version files change with the module.
    assert copied == {"lib/blink.mpy", "version.json", "lib/node/version.mpy"}
    assert device.files() == expected_files(project)
    assert on_device(device, "import blink\nprint(blink.on())").strip() == "blink v2"


def test_removed_files_and_packages_disappear_from_lib(project, device):
    assert deploy(project, device).returncode == 0
    # A stale source file someone copied by hand would shadow the .mpy: it goes too.
    (device.root / "lib" / "blink.py").write_text("def on():\n    return 'stale'\n")
    # Files outside lib/ are the node's (spool, last-good config): never touched.
    (device.root / "spool.bin").write_bytes(b"\x01\x02")
    for p in (project.lib / "extra").iterdir():
        p.unlink()
    (project.lib / "extra").rmdir()
    r = deploy(project, device)
    assert r.returncode == 0, r.stderr
    assert "remove lib/extra/gone.mpy" in r.stdout and "remove lib/blink.py" in r.stdout
    files = device.files()
    assert not (device.root / "lib" / "extra").exists()
    assert files.pop("spool.bin") == b"\x01\x02"
    assert files == expected_files(project)


def test_ota_secret_copies_this_nodes_key(project, device, tmp_path):
    from nodectl import bundle

    secret = tmp_path / "fleet.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    r = deploy(project, device, "--ota-secret", secret)
    assert r.returncode == 0, r.stdout + r.stderr
    topic = json.loads(project.config.read_text())["topic"]
    assert device.files()["ota.key"] == bundle.node_key(secret.read_bytes().strip(), topic)
    r = deploy(project, device, "--ota-secret", tmp_path / "missing.secret")
    assert r.returncode == 1 and "missing.secret" in r.stderr, r.stderr


def test_bad_config_is_refused_and_the_device_is_untouched(project, device):
    assert deploy(project, device).returncode == 0
    before = device.files()
    bad = dict(GOOD_CONFIG, mqtt={"host": "192.168.1.10", "port": "abc"})
    project.set_config(bad)
    project.write("lib/blink.py", "def on():\n    return 'never deployed'\n")
    r = deploy(project, device)
    assert r.returncode == 1
    assert 'mqtt.port: expected an integer 1..65535, got "abc"' in r.stderr
    assert "nothing was copied" in r.stdout
    assert device.files() == before
    assert device.alive


def test_bad_config_on_a_fresh_device_copies_nothing(project, device):
    project.set_config({"version": 1})
    r = deploy(project, device)
    assert r.returncode == 1
    assert "board: missing" in r.stderr
    assert device.files() == {}


def test_deploy_gets_the_raw_repl_from_a_half_typed_console(project, device):
    # Someone left the console mid-statement (a continuation line): mpremote's Ctrl-C must
    # clear it. (Ctrl-C cannot stop *running* code on the Unix port: without a line discipline
    # no SIGINT is raised; on the ESP32 the UART driver handles it. See docs/tools.md.)
    device.write(b"for i in range(3):\r\n  x = i")
    device.drain(quiet=0.3)
    r = deploy(project, device)
    assert r.returncode == 0, r.stdout + r.stderr
    assert device.files() == expected_files(project)


def test_dry_run_lists_changes_without_copying(project, device):
    r = deploy(project, device, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "copy   lib/blink.mpy (new)" in r.stdout
    assert device.files() == {}


def test_a_missing_or_empty_port_is_refused_in_one_line(project, tmp_path):
    for port, says in (
        (tmp_path / "ttyNONE", f"--port {tmp_path / 'ttyNONE'}: no such serial port"),
        ("", "--port: no serial port given (PORT= is empty)"),
    ):
        r = run_nodectl("deploy", "--port", port, "--config", project.config, *project.build_args())
        assert r.returncode == 1, r.stdout + r.stderr
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "it may be in use" not in r.stderr


def test_a_board_that_resets_on_soft_reset_gets_one_line_and_the_resume_hint(project, device):
    # Without --resume mpremote soft-resets on connecting; the Unix port on a pty ends there,
    # as a board does whose boot resets it: mpremote then fails with a 39-line traceback.
    r = run_nodectl(
        "deploy",
        "--port",
        device.port,
        "--config",
        project.config,
        "--secrets",
        project.secrets,
        *project.build_args(),
        "--timeout",
        "30",
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "try again with --resume (make deploy RESUME=1)" in r.stderr


def test_restart_is_skipped_on_the_unix_port_and_it_stays_usable(project, device):
    r = run_nodectl(
        "deploy",
        "--port",
        device.port,
        "--config",
        project.config,
        "--secrets",
        project.secrets,
        *project.build_args(),
        "--resume",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not restarted (the Unix port cannot hard-reset)" in r.stdout
    assert device.alive
    assert on_device(device, "import blink\nprint(blink.on())").strip() == "blink on"


def test_a_real_board_gets_one_mpremote_run_ending_in_a_hard_reset(tmp_path):
    local = {"lib/a.mpy": tmp_path / "a.mpy", "config.json": tmp_path / "c.json"}
    plan = nodectl.deploy.DeployPlan(
        copy=["config.json", "lib/a.mpy"],
        remove=["lib/old.mpy"],
        mkdir=["lib"],
        rmdir=[],
        unchanged=[],
    )
    argv = nodectl.deploy.deploy_argvs("/dev/ttyUSB0", plan, local, resume=False, restart=True)
    cmds = " ".join(argv[argv.index("/dev/ttyUSB0") + 1 :]).split(" + ")
    assert cmds[0].startswith("resume exec ")  # the listing run already interrupted the node
    assert "os.mkdir('lib')" in cmds[0] and "os.remove('lib/old.mpy')" in cmds[0]
    assert cmds[1:3] == [
        f"fs cp {tmp_path / 'c.json'} :config.json",
        f"fs cp {tmp_path / 'a.mpy'} :lib/a.mpy",
    ]
    assert cmds[3].startswith("exec ") and "@@NODECTL END" in cmds[3]  # verify by hash
    assert cmds[4] == "reset"
    nothing = nodectl.deploy.DeployPlan([], [], [], [], ["lib/a.mpy"])
    assert (
        nodectl.deploy.deploy_argvs("P", nothing, local, resume=False, restart=True)[-1] == "reset"
    )
    assert nodectl.deploy.deploy_argvs("P", nothing, local, resume=False, restart=False) is None
