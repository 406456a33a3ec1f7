# Over-the-air update on the device: signed manifest, chunks to flash, resume, each refusal,
# the atomic switch, the boot trial and rollback.
import json
import os
from hashlib import sha256

from node import ota
from tmpdir import fresh_dir

KEY = b"k" * 32
FILES = [("lib/node/a.py", b"A = 1\n" * 50), ("lib/node/b.py", b"B = 2\n" * 30), ("main.py", b"")]


def _hex(b):
    return "".join("%02x" % x for x in b)


def setup(files=FILES, version="2", board="esp32", key=KEY, seq=None):
    ota.ROOT = fresh_dir("ota") + "/"
    with open(ota.ROOT + ota.KEY, "wb") as f:
        f.write(KEY)
    body = json.dumps(
        {
            "version": version,
            "board": board,
            "seq": seq or _next_seq(),
            "files": [[p, len(d), _hex(sha256(d).digest())] for p, d in files],
        }
    ).encode()
    blob = b"".join(d for _, d in files)
    return body + b"\n" + _hex(ota.hmac_sha256(key, body)).encode(), blob


_SEQ = [0]


def _next_seq():
    _SEQ[0] += 1
    return _SEQ[0]


def send(r, blob, start=0, size=100):
    res = None
    off = start
    while off < len(blob):
        res = r.chunk(off, blob[off : off + size])
        if "next" not in res:
            return res
        off = res["next"]
    return res


def test_hmac_matches_rfc4231_case_2():
    mac = ota.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert _hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    long_key = b"\xaa" * 131  # RFC 4231 case 6: a key longer than the block is hashed first
    mac = ota.hmac_sha256(long_key, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert _hex(mac) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_full_transfer_switches_to_new_version():
    man, blob = setup()
    r = ota.Receiver("esp32")
    assert r.manifest(man) == {"ok": True, "version": "2", "next": 0}
    assert send(r, blob) == {"ok": True, "done": "2"}
    with open(ota.ROOT + "v/2/lib/node/a.py", "rb") as f:
        assert f.read() == FILES[0][1]
    assert _size(ota.ROOT + "v/2/main.py") == 0
    assert ota.read_pointer()["cur"] == "2"
    assert ota.status() == {"version": "2", "update": "trial"}


def _size(p):
    return os.stat(p)[6]


def test_out_of_order_chunk_is_not_written_and_expected_offset_returned():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    r.chunk(0, blob[:100])
    assert r.chunk(250, blob[250:300]) == {"ok": True, "next": 100}
    assert r.chunk(0, blob[:100]) == {"ok": True, "next": 100}  # a duplicate is ignored


def test_resumes_after_reboot_from_what_is_on_flash():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob[:333])  # the link drops here
    r2 = ota.Receiver("esp32")  # a reboot: all state comes from flash
    res = r2.manifest(man)  # the host sends the manifest again
    assert res["next"] == 333
    assert send(r2, blob, start=333, size=64) == {"ok": True, "done": "2"}


def test_refuses_wrong_signature_and_keeps_old_version():
    man, blob = setup(key=b"x" * 32)
    r = ota.Receiver("esp32")
    assert r.manifest(man) == {"ok": False, "reason": "bad signature"}
    assert r.chunk(0, blob[:100])["reason"] == "no manifest staged"
    assert ota.read_pointer() == {}


def test_refuses_bundle_for_another_board():
    man, _ = setup(board="esp32s3")
    res = ota.Receiver("esp32").manifest(man)
    assert res["ok"] is False and "esp32s3" in res["reason"], res


def test_refuses_corrupted_chunk_and_discards_stage():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    bad = bytearray(blob)
    bad[10] ^= 1
    res = send(r, bytes(bad))
    assert res == {"ok": False, "reason": "lib/node/a.py: sha256 mismatch (corrupted in transfer)"}
    assert ota.read_pointer() == {}
    assert ota.Receiver("esp32").m is None  # staging gone: a new attempt starts from 0


def test_refuses_chunk_past_the_end():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    res = send(r, blob + b"extra", size=len(blob) + 5)
    assert res["ok"] is False and "past the end" in res["reason"], res


def test_truncated_bundle_is_not_installed():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    res = send(r, blob[:-20])
    assert res == {"ok": True, "next": len(blob) - 20}
    assert ota.read_pointer() == {}
    assert ota.boot() is None  # still the USB-deployed files


def test_unconfirmed_version_rolls_back_after_trial_boots():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob)
    for _ in range(ota.TRIAL_BOOTS):
        assert ota.boot() == ota.ROOT + "v/2"  # crashes at import each time
    assert ota.boot() is None  # back to the previous (USB) version
    assert ota.status() == {"version": None, "update": "rolled back"}


def test_confirmed_version_stays_and_second_update_keeps_previous():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob)
    assert ota.boot() == ota.ROOT + "v/2"
    assert ota.confirm() is True
    for _ in range(5):
        assert ota.boot() == ota.ROOT + "v/2"
    root = ota.ROOT
    man3, blob3 = setup(version="3")
    ota.ROOT = root  # same node, a new bundle
    r.manifest(man3)
    assert send(r, blob3)["done"] == "3"
    ptr = ota.read_pointer()
    assert (ptr["cur"], ptr["prev"]) == ("3", "2")
    assert ota.trial_expired(59, 60) is False
    assert ota.trial_expired(60, 60) is True
    assert ota.boot() == ota.ROOT + "v/2"


def test_an_old_bundle_sent_again_is_refused_also_after_a_rollback():
    man2, blob2 = setup(seq=100)
    root = ota.ROOT
    r = ota.Receiver("esp32")
    r.manifest(man2)
    assert send(r, blob2)["done"] == "2"
    ota.confirm()
    man3, blob3 = setup(version="3", seq=200)
    ota.ROOT = root
    assert r.manifest(man3)["ok"] is True
    assert send(r, blob3)["done"] == "3"
    # the same bundle again, and the older one: someone replaying what they recorded
    why = "bundle %d is not newer than the last installed (200)"
    assert r.manifest(man3) == {"ok": False, "reason": why % 200}
    assert r.manifest(man2) == {"ok": False, "reason": why % 100}
    ota.trial_expired(60, 60)  # 3 does not prove itself: back to 2, and 3 stays refused
    assert ota.read_pointer()["cur"] == "2"
    assert r.manifest(man3) == {"ok": False, "reason": why % 200}
    man4, _ = setup(version="3", seq=201)  # the same code packed again is a new bundle
    ota.ROOT = root
    assert r.manifest(man4)["ok"] is True
    assert ota.read_pointer()["cur"] == "2"  # nothing changes before its transfer


def test_a_manifest_without_a_sequence_number_is_refused():
    man, _ = setup(seq=-1)
    assert ota.Receiver("esp32").manifest(man) == {
        "ok": False,
        "reason": "manifest: bad sequence number -1",
    }


def test_empty_chunk_before_the_end_refuses_a_truncated_bundle():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob[:-20])  # all the host has
    res = r.chunk(len(blob) - 20, b"")  # "no more bytes"
    assert res == {
        "ok": False,
        "reason": "bundle truncated: %d of %d bytes" % (len(blob) - 20, len(blob)),
    }
    assert ota.Receiver("esp32").m is None  # the stage is gone
    assert ota.read_pointer() == {}
    assert r.chunk(5, b"") == {"ok": False, "reason": "no manifest staged"}


def test_empty_chunk_at_another_offset_only_asks_for_the_expected_one():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob[:100])
    assert r.chunk(40, b"") == {"ok": True, "next": 100}


def _root():
    ota.ROOT = fresh_dir("ota") + "/"
    with open(ota.ROOT + ota.KEY, "wb") as f:
        f.write(KEY)


def _install(version="2", files=FILES, confirm=True):
    root = ota.ROOT
    man, blob = setup(files=files, version=version)
    ota.ROOT = root
    r = ota.Receiver("esp32")
    r.manifest(man)
    assert send(r, blob)["done"] == version
    if confirm:
        assert ota.boot() == ota.ROOT + "v/" + version
        assert ota.confirm()
    return man, blob


FILES3 = [("lib/node/a.py", b"A = 3\n" * 40), ("lib/node/c.py", b"C = 3\n" * 20), ("main.py", b"")]


def test_boot_rolls_back_from_a_version_with_a_missing_file():
    _root()
    _install("2")
    _install("3", FILES3)
    assert ota.boot() == ota.ROOT + "v/3"
    ota.confirm()
    os.remove(ota.ROOT + "v/3/lib/node/c.py")
    assert ota.boot() == ota.ROOT + "v/2"  # sizes are checked at every boot
    ptr = ota.read_pointer()
    assert (ptr["cur"], ptr["state"], ptr["why"]) == ("2", "rolled back", "v/3 incomplete")


def test_trial_boot_rolls_back_from_a_corrupted_file_of_the_same_size():
    _root()
    _install("2")
    _install("3", FILES3, confirm=False)
    with open(ota.ROOT + "v/3/lib/node/a.py", "r+b") as f:
        f.write(b"B")  # same size, other bytes: only the hash sees it
    assert ota.boot() == ota.ROOT + "v/2"
    assert ota.read_pointer()["why"] == "v/3 incomplete or corrupted"


def test_boot_falls_back_to_usb_files_when_both_versions_are_incomplete():
    _root()
    _install("2")
    _install("3", FILES3)
    ota.confirm()
    os.remove(ota.ROOT + "v/3/main.py")
    os.remove(ota.ROOT + "v/2/main.py")
    assert ota.boot() is None
    assert ota.read_pointer()["cur"] is None


class _Cut(Exception):
    pass


class _CuttingOs:
    """os for node.ota that loses power before its n-th change to the flash."""

    def __init__(self, left):
        self.left = left

    def _tick(self):
        if self.left <= 0:
            raise _Cut()
        self.left -= 1

    def rename(self, a, b):
        self._tick()
        os.rename(a, b)

    def remove(self, p):
        self._tick()
        os.remove(p)

    def rmdir(self, p):
        self._tick()
        os.rmdir(p)

    def mkdir(self, p):
        self._tick()
        os.mkdir(p)

    def listdir(self, p):
        return os.listdir(p)

    def stat(self, p):
        return os.stat(p)


def _cutting_open(cut):
    def op(p, mode="r"):
        if "r" not in mode:
            cut._tick()
        return open(p, mode)

    return op


def _whole(version, files):
    # What the node will run is byte for byte the version it names.
    for p, d in files:
        with open(ota.ROOT + "v/" + version + "/" + p, "rb") as f:
            if f.read() != d:
                return False
    return True


def _cut_every_step_of_the_switch(versions, old, new):
    # A power cut before each flash change of the last chunk and the switch, one run each:
    # the boot after it runs a whole version, old or new, and a new attempt still succeeds.
    n = 0
    outcomes = set()
    while True:
        _root()
        for v, files in versions:
            _install(v, files)
        root = ota.ROOT
        man, blob = setup(files=new[1], version=new[0])
        ota.ROOT = root
        r = ota.Receiver("esp32")
        r.manifest(man)
        send(r, blob[:-10])
        cut = _CuttingOs(n)
        ota.os, ota.open = cut, _cutting_open(cut)
        try:
            res = r.chunk(len(blob) - 10, blob[-10:])
            done = True
        except _Cut:
            done = False
        finally:
            ota.os, ota.open = os, open
        d = ota.boot()
        ver = d[len(ota.ROOT) + 2 :] if d else None
        assert ver in (old[0], new[0]), (n, d)
        assert _whole(ver, old[1] if ver == old[0] else new[1]), (n, ver)
        outcomes.add(ver)
        if done:
            assert res["done"] == new[0]
            break
        n += 1
        r = ota.Receiver("esp32")  # the next boot: the host sends the manifest again
        res = r.manifest(man)
        assert res["ok"], res
        res = send(r, blob, start=res["next"]) or r.chunk(len(blob), b"")  # as the host does
        assert res == {"ok": True, "done": new[0]} or "already running" in res["reason"], res
        d = ota.boot()
        assert d == ota.ROOT + "v/" + new[0] and _whole(new[0], new[1]), (n, d)
    assert n >= 4 and outcomes == {old[0], new[0]}, (n, outcomes)


def test_power_cut_at_every_step_of_the_switch_leaves_a_whole_version():
    _cut_every_step_of_the_switch([("2", FILES)], ("2", FILES), ("3", FILES3))


def test_power_cut_while_reinstalling_the_previous_version_leaves_a_whole_version():
    # running 3, previous 2, and 2 comes again: its folder is deleted and replaced
    _cut_every_step_of_the_switch([("2", FILES), ("3", FILES3)], ("3", FILES3), ("2", FILES))


def test_bundle_staged_whole_before_a_reboot_is_switched_on_the_hosts_empty_chunk():
    man, blob = setup()
    r = ota.Receiver("esp32")
    r.manifest(man)
    send(r, blob[:-10])
    with open(ota.ROOT + "ota/stage/lib/node/b.py", "ab") as f:
        f.write(blob[-10:])  # the last bytes reached flash, then the power went
    r = ota.Receiver("esp32")
    assert r.manifest(man)["next"] == len(blob)
    assert r.chunk(len(blob), b"") == {"ok": True, "done": "2"}


def test_empty_file_in_the_middle_of_the_bundle_does_not_stall_the_transfer():
    files = [("lib/a.py", b"A" * 300), ("lib/pkg/__init__.py", b""), ("lib/pkg/b.py", b"B" * 300)]
    man, blob = setup(files=files)
    r = ota.Receiver("esp32")
    r.manifest(man)
    assert send(r, blob, size=256) == {"ok": True, "done": "2"}
    assert _size(ota.ROOT + "v/2/lib/pkg/__init__.py") == 0
