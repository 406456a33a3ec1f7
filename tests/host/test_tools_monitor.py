"""nodectl monitor and config-check against real inputs: a mosquitto (the shared `broker`
fixture) with messages published the way lib/node/app.py publishes them, and the device's own
config validator run under the Unix port."""

import json
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from tools_util import GOOD_CONFIG, GOOD_SECRETS, NODECTL, REPO, nodectl, run_nodectl


def publisher(port):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fake-node-{time.monotonic_ns()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish_node(port, base, status="online"):
    """What a node leaves on the broker after a boot and one reading (retained parts)."""
    c = publisher(port)
    msgs = [
        (f"{base}/status", status),
        (f"{base}/status/bme280", "online"),
        (f"{base}/status/outside", "offline"),
        (f"{base}/Temp", "21.5"),
        (f"{base}/Hum", "48"),
        (
            f"{base}/info",
            json.dumps({"fw": "v1.2-3-gabc", "board": "esp32-devkitc", "ip": "192.168.1.50"}),
        ),
    ]
    for topic, payload in msgs:
        c.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def clear(port, base, subs):
    c = publisher(port)
    for s in subs:
        c.publish(f"{base}/{s}", b"", qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


@pytest.fixture
def base(broker, request):
    b = "test-monitor/" + request.node.name.replace("[", "-").replace("]", "")[-40:]
    yield b
    clear(broker.port, b, ["status", "status/bme280", "status/outside", "Temp", "Hum", "info"])


def monitor(broker, base, *extra, timeout=30):
    return run_nodectl(
        "monitor",
        "--host",
        "127.0.0.1",
        "--port",
        broker.port,
        "--base",
        base,
        *extra,
        timeout=timeout,
    )


def test_once_shows_values_availability_and_diagnostics(broker, base):
    publish_node(broker.port, base)
    r = monitor(broker, base, "--once", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["availability"] == "online"
    kinds = {t: v["kind"] for t, v in doc["topics"].items()}
    assert kinds == {
        "status": "availability",
        "status/bme280": "availability",
        "status/outside": "availability",
        "Temp": "value",
        "Hum": "value",
        "info": "diagnostics",
    }
    assert doc["topics"]["Temp"] == {"payload": "21.5", "kind": "value", "retained": True}


def test_once_prints_a_table(broker, base):
    publish_node(broker.port, base)
    r = monitor(broker, base, "--once")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"node {base}: ONLINE"
    assert lines[1].split() == ["KIND", "TOPIC", "VALUE", "AGE"]
    rows = [line.split() for line in lines[2:]]
    assert rows[0] == ["availability", "status", "online", "retained"]
    assert ["value", "Temp", "21.5", "retained"] in rows
    assert ["diagnostics", "info.fw", '"v1.2-3-gabc"', "retained"] in rows
    order = [r[0] for r in rows]
    assert order == sorted(order, key=nodectl.monitor.KIND_ORDER.index)


def test_offline_node_exits_1(broker, base):
    publish_node(broker.port, base, status="offline")
    r = monitor(broker, base, "--once")
    assert r.returncode == 1
    assert f"node {base}: OFFLINE" in r.stdout


def test_silent_node_exits_1_after_the_wait(broker, base):
    t0 = time.monotonic()
    r = monitor(broker, base, "--once", "--wait", "1")
    assert r.returncode == 1
    assert f"nothing received under {base}/#" in r.stderr
    assert time.monotonic() - t0 < 10


def test_duration_collects_messages_published_while_running(broker, base):
    proc = subprocess.Popen(
        [
            sys.executable,
            str(NODECTL),
            "monitor",
            "--host",
            "127.0.0.1",
            "--port",
            str(broker.port),
            "--base",
            base,
            "--duration",
            "2.5",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        time.sleep(1.2)  # the monitor connects and subscribes (bounded by --duration)
        c = publisher(broker.port)
        c.publish(f"{base}/status", "online", qos=1, retain=True).wait_for_publish(5)
        c.publish(f"{base}/diag", json.dumps({"heap_free": 61000, "reconnects": 2}), qos=1)
        c.publish(f"{base}/Temp", "22.0", qos=1).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["topics"]["Temp"] == {"payload": "22.0", "kind": "value", "retained": False}
    assert json.loads(doc["topics"]["diag"]["payload"])["heap_free"] == 61000


def test_unreachable_broker_exits_3():
    r = run_nodectl("monitor", "--host", "127.0.0.1", "--port", "1", "--base", "x", "--once")
    assert r.returncode == 3
    assert "cannot connect to the broker at 127.0.0.1:1" in r.stderr


def test_bad_monitor_args_name_the_argument():
    r = run_nodectl("monitor", "--base", "x", "--duration", "-3")
    assert r.returncode == 2
    assert "argument --duration: expected more than 0 seconds, got -3" in r.stderr
    r = run_nodectl("monitor", "--once")
    assert r.returncode == 2 and "the following arguments are required: --base" in r.stderr


# -- config-check: the device's validator (lib/node/config.py) run by the Unix port -----------


def test_config_check_accepts_a_good_config(tmp_path):
    cfg, sec = tmp_path / "config.json", tmp_path / "secrets.json"
    cfg.write_text(json.dumps(GOOD_CONFIG))
    sec.write_text(json.dumps(GOOD_SECRETS))
    r = run_nodectl("config-check", cfg, sec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"{cfg}: OK"


def test_config_check_prints_path_specific_messages_and_exits_1(tmp_path):
    cfg = tmp_path / "config.json"
    bad = dict(GOOD_CONFIG, interval="60", mqtt={"host": "192.168.1.10", "port": 70000})
    cfg.write_text(json.dumps(bad))
    r = run_nodectl("config-check", cfg, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert f'{cfg}: interval: expected an integer 1..86400, got "60"' in lines
    assert f"{cfg}: mqtt.port: expected an integer 1..65535, got 70000" in lines


def test_config_check_reports_broken_json_and_missing_files(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"version": 1,')
    r = run_nodectl("config-check", cfg)
    assert r.returncode == 1
    assert f"{cfg}:1:15: config is not valid JSON: Expecting property name" in r.stderr
    r = run_nodectl("config-check", tmp_path / "nope.json")
    assert r.returncode == 1 and "nope.json: no such file" in r.stderr


def test_config_check_without_the_validator_is_a_tool_failure(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GOOD_CONFIG))
    r = run_nodectl("config-check", cfg, "--lib", tmp_path)
    assert r.returncode == 3 and "cannot validate: no node/config.py under" in r.stderr


def test_config_check_refuses_a_document_that_is_not_an_object(tmp_path):
    cfg = tmp_path / "config.json"
    for text, got in (
        ("null", "null"),
        ("[1, 2]", "a list"),
        ('"x"', "a string"),
        ("7", "a number"),
    ):
        cfg.write_text(text)
        r = run_nodectl("config-check", cfg)
        assert r.returncode == 1, (text, r.stdout)
        assert f"{cfg}: expected a JSON object {{...}} at the top, got {got}" in r.stderr
        assert "OK" not in r.stdout


def test_config_check_reports_line_and_column_of_a_missing_or_trailing_comma(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{\n  "version": 1\n  "board": "esp32-devkitc"\n}\n')
    r = run_nodectl("config-check", cfg)
    assert r.returncode == 1 and f"{cfg}:3:3: config is not valid JSON" in r.stderr
    cfg.write_text('{"version": 1,\n "board": "esp32-devkitc",\n}\n')
    r = run_nodectl("config-check", cfg)
    assert r.returncode == 1 and f"{cfg}:3:1: config is not valid JSON" in r.stderr


def test_config_check_without_secrets_names_secrets_json(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text((REPO / "firmware" / "config.example.json").read_text())
    r = run_nodectl("config-check", cfg)
    assert r.returncode == 1
    assert f"{cfg}: wifi: missing" in r.stdout
    assert "hint: WiFi networks and broker passwords live in secrets.json" in r.stdout
    r = run_nodectl("config-check", cfg, REPO / "firmware" / "secrets.example.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"{cfg}: OK"


# -- monitor: refusals, credentials, output when piped ----------------------------------------


def test_monitor_refuses_an_empty_base_and_bad_brokers_in_one_line():
    for extra, says in (
        (["--base", ""], "--base: no base topic given (BASE= is empty)"),
        (["--base", "a/#"], "--base a/#: a node's base topic, without the wildcards"),
        (["--base", "x", "--broker", "mqtt://pi:1883"], "not a URL"),
        (["--base", "x", "--broker", "pi:port"], "expected HOST or HOST:PORT"),
    ):
        r = run_nodectl("monitor", *extra, "--once", "--wait", "1")
        assert r.returncode == 1, (extra, r.stderr)
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_nodectl("monitor", "--base", "x", "--broker", "no-such-host.invalid", "--once")
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot connect to the broker at no-such-host.invalid:1883: unknown host" in r.stderr


def test_monitor_logs_in_and_says_when_the_broker_refuses(broker, base):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-node-auth")
    c.username_pw_set("node", "s3cret")
    c.connect("127.0.0.1", broker.auth_port)
    c.loop_start()
    c.publish(f"{base}/status", "online", qos=1, retain=True).wait_for_publish(5)
    c.publish(f"{base}/Temp", "19.5", qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()
    args = ["--host", "127.0.0.1", "--port", broker.auth_port, "--base", base, "--once"]
    r = run_nodectl("monitor", *args, "--user", "node", "--password", "s3cret")
    assert r.returncode == 0, r.stderr
    assert ["value", "Temp", "19.5", "retained"] in [x.split() for x in r.stdout.splitlines()]
    r = run_nodectl("monitor", *args, "--user", "node", "--password", "wrong")
    assert r.returncode == 3
    assert f"the broker at 127.0.0.1:{broker.auth_port} refused the connection: Not author" in (
        r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1


def test_monitor_piped_prints_each_message_at_once_and_its_table_on_sigterm(broker, base):
    proc = subprocess.Popen(
        [sys.executable, str(NODECTL), "monitor", "--host", "127.0.0.1", "--port",
         str(broker.port), "--base", base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # connects and subscribes
        c = publisher(broker.port)
        c.publish(f"{base}/status", "online", qos=1, retain=True).wait_for_publish(5)
        c.publish(f"{base}/Temp", "23.5", qos=1).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()
        assert proc.stdout is not None
        # Each line arrives while the monitor still runs: flushed as it comes, not at exit.
        lines = [proc.stdout.readline().split(None, 1)[1] for _ in range(2)]
        assert proc.poll() is None
        assert lines == [f"{base}/status  online\n", f"{base}/Temp  23.5\n"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"node {base}: ONLINE" in out  # the table, printed on SIGTERM


def test_sensor_rows_show_offline_once_the_node_will_says_offline(broker, base):
    publish_node(broker.port, base, status="offline")  # status/bme280 stays retained online
    r = monitor(broker, base, "--once")
    rows = [line.split(None, 2) for line in r.stdout.splitlines()[2:]]
    row = {t: v for _, t, v in rows}
    assert row["status"].split()[0] == "offline"
    assert row["status/bme280"].startswith("offline (node offline)")
    assert row["status/outside"].split()[0] == "offline"


# -- against a simulated node: the real firmware on the Unix port (tools/sim/run.py) ----------


def test_monitor_follows_a_simulated_node_then_sees_it_go_offline(broker, tmp_path):
    base = "test-monitor/simnode"
    sim = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tools" / "sim" / "run.py"),
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--base",
            base,
            "--interval",
            "1",
            "--duration",
            "60",
            "--dir",
            str(tmp_path / "sim"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    doc: dict = {}
    try:
        # Watch in short windows until the node has said online, shown its info and published
        # a reading (bounded: a loaded machine boots the sim more slowly).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = monitor(broker, base, "--duration", "1.5", "--json")
            assert r.returncode in (0, 1), r.stderr
            doc = json.loads(r.stdout)
            if doc["availability"] == "online" and {"Temp", "info"} <= set(doc["topics"]):
                break
        sim.send_signal(signal.SIGINT)  # the sim stops the node as Ctrl-C would
        sim_err = sim.communicate(timeout=30)[1]
    finally:
        if sim.poll() is None:
            sim.kill()
    topics = doc["topics"]
    assert doc["availability"] == "online", sim_err
    assert topics["Temp"]["kind"] == "value"
    assert float(topics["Temp"]["payload"]) == pytest.approx(20, abs=15)
    info = json.loads(topics["info"]["payload"])
    assert topics["info"]["kind"] == "diagnostics" and "fw" in info
    # The stopped node said offline (retained) before disconnecting.
    r = monitor(broker, base, "--once")
    assert r.returncode == 1
    assert f"node {base}: OFFLINE" in r.stdout
    clear(broker.port, base, list(topics))
