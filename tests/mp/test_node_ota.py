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


def setup(files=FILES, version="2", board="esp32", key=KEY):
    ota.ROOT = fresh_dir("ota") + "/"
    with open(ota.ROOT + ota.KEY, "wb") as f:
        f.write(KEY)
    body = json.dumps(
        {
            "version": version,
            "board": board,
            "files": [[p, len(d), _hex(sha256(d).digest())] for p, d in files],
        }
    ).encode()
    blob = b"".join(d for _, d in files)
    return body + b"\n" + _hex(ota.hmac_sha256(key, body)).encode(), blob


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
