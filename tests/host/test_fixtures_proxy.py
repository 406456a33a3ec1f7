"""Self-tests of the fault proxy: each mode does what it says on the wire. Most use a loopback
echo server as the target, which records what reached it and how its peer ended; the MQTT
drops use the real broker."""

import random
import socket
import threading
import time

import pytest

from fixtures import rawmqtt
from fixtures.proxy import FaultProxy, MQTTStream

QUIET = 0.3  # s: how long "nothing arrives" is watched for


class Echo:
    """Echo server on loopback; ``received`` is every byte that reached it, ``ends`` how each
    connection ended ("eof" or "reset")."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.ends = []
        self._stop = False
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,))
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(0.1)
        with conn:
            while not self._stop:
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    self.ends.append("reset")
                    return
                if not data:
                    self.ends.append("eof")
                    return
                self.received += data
                conn.sendall(data)

    def close(self):
        self._stop = True
        for t in self._threads:
            t.join(2)
        self.sock.close()


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


def wait_until(cond, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def dial(proxy):
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def dial_and_recv(proxy):
    """First recv on a new connection; a reset that lands while connect() is still checking
    SO_ERROR counts as "reset" too."""
    try:
        s = dial(proxy)
    except ConnectionResetError:
        return "reset"
    with s:
        return recv_or_timeout(s, 2)


def recv_or_timeout(s, timeout=QUIET):
    """What the socket gives within timeout: bytes, b"" (EOF), "timeout" or "reset"."""
    s.settimeout(timeout)
    try:
        return s.recv(4096)
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"


def test_pass_forwards_both_ways_and_counts(echo, make_proxy):
    p = make_proxy(echo.port)
    with dial(p) as s:
        s.sendall(b"ping")
        assert recv_or_timeout(s, 2) == b"ping"
    assert p.stats["up"]["bytes"] == 4 and p.stats["down"]["bytes"] == 4
    assert p.connections == 1


@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_blackhole_swallows_bytes_and_keeps_the_connection_open(echo, make_proxy, direction):
    p = make_proxy(echo.port)
    with dial(p) as s:
        s.sendall(b"a")
        assert recv_or_timeout(s, 2) == b"a"
        p.mode("blackhole", dir=direction)
        s.sendall(b"lost")
        if direction == "down":
            assert wait_until(lambda: echo.received == b"alost")
        assert recv_or_timeout(s) == "timeout"  # no data, and no EOF or RST either
        assert echo.received == (b"alost" if direction == "down" else b"a")
        assert echo.ends == []
        p.mode("pass")
        s.sendall(b"back")
        assert recv_or_timeout(s, 2) == b"back"  # the same connection still works


def test_blackhole_up_hides_the_client_closing(echo, make_proxy):
    p = make_proxy(echo.port)
    with dial(p) as s:
        s.sendall(b"a")
        assert recv_or_timeout(s, 2) == b"a"
        p.mode("blackhole", dir="up")
        s.shutdown(socket.SHUT_WR)
        time.sleep(QUIET)
        assert echo.ends == []  # the broker would still think the client is there


def test_cut_fin_gives_eof_on_both_sides_then_passes_again(echo, make_proxy):
    p = make_proxy(echo.port)
    with dial(p) as s:
        s.sendall(b"a")
        assert recv_or_timeout(s, 2) == b"a"
        p.mode("cut")
        assert recv_or_timeout(s, 2) == b""
    assert wait_until(lambda: echo.ends == ["eof"])
    with dial(p) as s:  # cut is one-shot: a reconnect gets through
        s.sendall(b"b")
        assert recv_or_timeout(s, 2) == b"b"


def test_cut_rst_resets_the_client(echo, make_proxy):
    p = make_proxy(echo.port)
    with dial(p) as s:
        s.sendall(b"a")
        assert recv_or_timeout(s, 2) == b"a"
        p.mode("cut", how="rst")
        assert recv_or_timeout(s, 2) == "reset"
    assert wait_until(lambda: echo.ends == ["reset"])


def test_delay_holds_each_chunk_and_keeps_order(echo, make_proxy):
    p = make_proxy(echo.port)
    with dial(p) as s:
        t0 = time.monotonic()
        s.sendall(b"x")
        assert recv_or_timeout(s, 2) == b"x"
        fast = time.monotonic() - t0
        p.mode("delay", ms=250, dir="down")
        t0 = time.monotonic()
        for chunk in (b"1", b"2", b"3"):
            s.sendall(chunk)
            time.sleep(0.02)
        got = b""
        while len(got) < 3:
            r = recv_or_timeout(s, 2)
            assert isinstance(r, bytes) and r, r
            got += r
        slow = time.monotonic() - t0
    assert got == b"123"
    assert fast < 0.1 and slow >= 0.25, (fast, slow)


@pytest.mark.parametrize("how, expect", [("fin", b""), ("rst", "reset")])
def test_refuse_closes_new_and_current_connections_until_pass(echo, make_proxy, how, expect):
    p = make_proxy(echo.port)
    with dial(p) as old:
        old.sendall(b"a")
        assert recv_or_timeout(old, 2) == b"a"
        p.mode("refuse", how=how)
        assert recv_or_timeout(old, 2) == expect
    for _ in range(2):
        assert dial_and_recv(p) == expect
    p.mode("pass")
    with dial(p) as s:
        s.sendall(b"b")
        assert recv_or_timeout(s, 2) == b"b"
    assert echo.received == b"ab"


def test_target_down_resets_the_client(make_proxy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # nobody listens here once probe is closed
    p = make_proxy(dead_port)
    assert dial_and_recv(p) == "reset"


def test_drop_puback_drops_exactly_one(broker, make_proxy):
    p = make_proxy(broker.port)
    s = rawmqtt.open_session(p.port, "fx-drop", timeout=2)
    with s:
        p.drop("PUBACK")
        s.sendall(rawmqtt.publish("fx/drop", b"1", qos=1, pid=1))
        assert recv_or_timeout(s, 0.5) == "timeout"  # its PUBACK vanished
        s.sendall(rawmqtt.publish("fx/drop", b"2", qos=1, pid=2))
        s.settimeout(2)
        assert rawmqtt.read_packet(s) == (0x40, b"\x00\x02")
        assert p.pending_drops() == 0
    assert p.stats["down"]["dropped"] == 1 and p.stats["up"]["dropped"] == 0
    assert p.stats["up"]["packets"] >= 3  # CONNECT, PUBLISH, PUBLISH


def test_drop_pingresp_defaults_to_the_down_direction(broker, make_proxy):
    p = make_proxy(broker.port)
    with rawmqtt.open_session(p.port, "fx-ping", timeout=2) as s:
        p.drop("PINGRESP", count=2)
        for _ in range(2):
            s.sendall(rawmqtt.PINGREQ)  # PINGREQ itself must get through: it is "up"
        assert recv_or_timeout(s, 0.5) == "timeout"
        s.sendall(rawmqtt.PINGREQ)
        s.settimeout(2)
        assert rawmqtt.read_packet(s) == (0xD0, b"")
    assert p.stats["down"]["dropped"] == 2


def test_stream_parser_drops_whole_packets_across_any_read_boundaries():
    packets = [
        rawmqtt.packet(0x20, b"\x00\x00"),
        rawmqtt.publish("t", bytes(300), qos=1, pid=9),  # 2-byte remaining length
        rawmqtt.puback(9),
        rawmqtt.publish("t", b"", qos=0),
        rawmqtt.puback(10),
        rawmqtt.packet(0xD0, b""),
    ]
    stream = b"".join(packets)
    expected = b"".join(packets[:2] + packets[3:])  # the first PUBACK removed
    rng = random.Random(1)
    for cuts in ([1] * len(stream), [len(stream)], [rng.randint(1, 40) for _ in range(200)]):
        left = [2]  # drop budget, as FaultProxy.drop keeps it

        def decide(ptype, left=left):
            if ptype == 4 and left[0] > 1:
                left[0] -= 1
                return True
            return False

        parser, out, i = MQTTStream(), b"", 0
        for n in cuts:
            out += parser.feed(stream[i : i + n], decide)
            i += n
            if i >= len(stream):
                break
        assert out == expected
        assert (parser.packets, parser.dropped) == (6, 1)


def test_bad_arguments_are_refused(make_proxy):
    p = make_proxy(1)
    for kw in (
        {"mode": "explode"},
        {"mode": "blackhole", "dir": "sideways"},
        {"mode": "cut", "how": "x"},
    ):
        with pytest.raises(ValueError):
            p.mode(**kw)
    with pytest.raises(ValueError):
        p.drop("PUBLISHED")


def test_close_stops_the_thread_and_frees_the_port(echo):
    p = FaultProxy("127.0.0.1", echo.port)
    s = dial(p)
    s.sendall(b"a")
    assert recv_or_timeout(s, 2) == b"a"
    p.close()
    assert not p._thread.is_alive()
    assert recv_or_timeout(s, 2) == b""
    s.close()
    with pytest.raises(ConnectionRefusedError):
        dial(p)
