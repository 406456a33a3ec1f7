# Durable store: bounded, batched flash writes, survives reboot and power cut, oldest first.
import os

from mqtt.store import Store
from tmpdir import fresh_dir


def fresh():
    d = fresh_dir("mqtt_store")
    return d + "/spool.dat"


def rec(i):
    return b'{"t":%d,"s":"bme280","Temp":%d.5}' % (1763784000 + i, i)


def drain(sp, step=7):
    out = []
    while True:
        got = sp.peek(step)
        if not got:
            break
        out.extend(r for r in got if r is not None)
        sp.commit()
    return out


def test_records_come_back_oldest_first():
    sp = Store(fresh(), ram=8, max_bytes=8192, batch=4)
    for i in range(30):
        sp.put(rec(i))
    assert sp.depth() == 30
    assert drain(sp) == [rec(i) for i in range(30)]
    assert sp.depth() == 0 and sp.dropped == 0


def test_flash_written_in_batches():
    sp = Store(fresh(), ram=16, max_bytes=8192, batch=8)
    for i in range(7):
        sp.put(rec(i))
    assert sp.writes == 0
    sp.put(rec(7))
    assert sp.writes == 1
    for i in range(8, 24):
        sp.put(rec(i))
    assert sp.writes == 3


def test_reboot_keeps_flushed_records_and_replay_position():
    p = fresh()
    sp = Store(p, ram=8, max_bytes=8192, batch=4)
    for i in range(20):
        sp.put(rec(i))
    sp.flush()
    got = sp.peek(5)
    assert got == [rec(i) for i in range(5)]
    sp.commit()
    sp.peek(3)  # handed out but never confirmed: must come again after the reboot
    del sp
    sp2 = Store(p, ram=8, max_bytes=8192, batch=4)
    assert sp2.depth() == 15
    assert drain(sp2) == [rec(i) for i in range(5, 20)]
    del sp2
    sp3 = Store(p, ram=8, max_bytes=8192, batch=4)
    assert sp3.depth() == 0 and drain(sp3) == []


def test_power_loss_loses_only_unflushed_ram_and_skips_torn_line():
    p = fresh()
    sp = Store(p, ram=8, max_bytes=8192, batch=4)
    for i in range(10):  # 8 flushed in two batches, 2 only in RAM
        sp.put(rec(i))
    # A power cut in the middle of the next append: a torn half line on flash.
    seg = [
        n for n in os.listdir(p[: p.rfind("/")]) if n.startswith("spool.dat.") and n[-1].isdigit()
    ]
    assert len(seg) == 1
    with open(p[: p.rfind("/")] + "/" + seg[0], "ab") as f:
        f.write(b'0badc0de {"t":17637')
    del sp
    sp2 = Store(p, ram=8, max_bytes=8192, batch=4)
    assert sp2.depth() == 8
    for i in range(10, 14):  # appended after the torn tail, in a new segment
        sp2.put(rec(i))
    assert drain(sp2) == [rec(i) for i in range(8)] + [rec(i) for i in range(10, 14)]


def test_corrupt_line_is_skipped_and_counted():
    p = fresh()
    sp = Store(p, ram=4, max_bytes=8192, batch=4)
    for i in range(4):
        sp.put(rec(i))
    d = p[: p.rfind("/")]
    seg = d + "/" + [n for n in os.listdir(d) if n.startswith("spool.dat.") and n[-1].isdigit()][0]
    with open(seg, "rb") as f:
        data = bytearray(f.read())
    i = data.find(b'"Temp":1.5')
    data[i + 8] = ord("9")  # flip one digit of record 1
    with open(seg, "wb") as f:
        f.write(data)
    sp2 = Store(p, ram=4, max_bytes=8192, batch=4)
    assert drain(sp2) == [rec(0), rec(2), rec(3)]
    assert sp2.corrupt == 1


def test_bounded_drops_oldest_and_counts():
    p = fresh()
    sp = Store(p, ram=8, max_bytes=2048, batch=8)
    n = 300
    for i in range(n):
        sp.put(rec(i))
    sp.flush()
    total = 0
    d = p[: p.rfind("/")]
    for name in os.listdir(d):
        total += os.stat(d + "/" + name)[6]
    assert total <= 2048 + 64, total  # + the small .pos file
    got = drain(sp)
    assert sp.dropped > 0
    assert len(got) + sp.dropped == n
    # What is left is the newest, contiguous and in order.
    assert got == [rec(i) for i in range(n - len(got), n)]
    # The drop counter survives a reboot.
    dropped = sp.dropped
    assert Store(p, ram=8, max_bytes=2048, batch=8).dropped == dropped


def test_reservation_survives_flush_between_peek_and_commit():
    sp = Store(fresh(), ram=8, max_bytes=8192, batch=8)
    for i in range(3):
        sp.put(rec(i))
    assert sp.peek(2) == [rec(0), rec(1)]
    sp.flush()  # RAM ring goes to flash while two records are out
    sp.put(rec(3))
    assert sp.peek(10) == [rec(2), rec(3)]
    sp.commit()
    assert sp.depth() == 0


def test_release_hands_the_same_records_out_again():
    sp = Store(fresh(), ram=8, max_bytes=8192, batch=2)
    for i in range(5):
        sp.put(rec(i))
    assert sp.peek(3) == [rec(0), rec(1), rec(2)]
    sp.release()
    assert sp.peek(3) == [rec(0), rec(1), rec(2)]


def test_overflow_while_reserved_never_commits_newer_records():
    sp = Store(fresh(), ram=8, max_bytes=1024, batch=4)
    for i in range(4):
        sp.put(rec(i))
    assert sp.peek(4) == [rec(i) for i in range(4)]
    for i in range(4, 200):  # outage: the reserved ones are dropped by the overflow
        sp.put(rec(i))
    sp.commit()
    got = drain(sp)
    assert got and got[-1] == rec(199)
    assert len(got) + sp.dropped == 200
    assert got == [rec(i) for i in range(200 - len(got), 200)]


def test_files_removed_after_full_replay():
    p = fresh()
    sp = Store(p, ram=4, max_bytes=4096, batch=4)
    for i in range(40):
        sp.put(rec(i))
    drain(sp)
    d = p[: p.rfind("/")]
    left = [n for n in os.listdir(d) if n != "spool.dat.pos"]
    assert left == [], left


def seg_files(p):
    d = p[: p.rfind("/")]
    return sorted(
        d + "/" + n for n in os.listdir(d) if n.startswith("spool.dat.") and n[-1].isdigit()
    )


def test_power_cut_at_every_byte_of_an_append_leaves_whole_records_or_none():
    p = fresh()
    st = Store(p, ram=4, max_bytes=8192, batch=4)
    for i in range(4):
        st.put(rec(i))
    seg = seg_files(p)[0]
    with open(seg, "rb") as f:
        good = f.read()
    for i in range(4, 8):
        st.put(rec(i))  # second batch: the append the power cut interrupts
    with open(seg, "rb") as f:
        full = f.read()
    del st
    for cut in range(len(good), len(full) + 1):
        with open(seg, "wb") as f:
            f.write(full[:cut])
        for name in seg_files(p)[1:]:
            os.remove(name)  # a fresh segment made by the previous reopen
        try:
            os.remove(p + ".pos")
        except OSError:
            pass
        got = drain(Store(p, ram=4, max_bytes=8192, batch=4))
        assert got == [rec(i) for i in range(len(got))], (cut, got)
        assert len(got) >= 4  # the batch written before the cut is never lost


def test_read_position_survives_reboot_and_a_cut_before_the_rename():
    p = fresh()
    st = Store(p, ram=4, max_bytes=8192, batch=4)
    for i in range(12):
        st.put(rec(i))
    assert st.peek(5) == [rec(i) for i in range(5)]
    st.commit()
    # Cut while the next position was being written: a half temp file, the old .pos intact.
    with open(p + ".pos.tmp", "w") as f:
        f.write("9")
    del st
    st2 = Store(p, ram=4, max_bytes=8192, batch=4)
    assert st2.pending() == 7 and len(st2) == 7
    assert drain(st2) == [rec(i) for i in range(5, 12)]


def test_ram_only_store_is_bounded_and_counts_what_it_drops():
    st = Store(None, ram=5, batch=2)
    for i in range(8):
        st.put(rec(i))
    assert len(st) == 5
    assert st.flush() is False  # nowhere to write: the caller learns it stays in RAM
    s = st.status()
    assert s["dropped"] == 3 and s["pending"] == 5 and s["bytes"] == 0
    assert drain(st) == [rec(i) for i in range(3, 8)]


def test_status_reports_flash_bytes_within_the_bound():
    p = fresh()
    st = Store(p, ram=8, max_bytes=2048, batch=8)
    for i in range(200):
        st.put(rec(i))
    s = st.status()
    assert 0 < s["bytes"] <= 2048 and s["max_bytes"] == 2048
    assert s["dropped"] > 0 and s["pending"] + s["dropped"] == 200


def test_several_batches_out_commit_oldest_first_against_a_model():
    # A consumer with several batches reserved (peek after peek) commits the oldest n as
    # they are acknowledged, releases the newest when a publish is refused, while new records
    # arrive and segments roll over: every record comes out once, in order, none lost.
    import random

    random.seed(7)
    sp = Store(fresh(), ram=8, max_bytes=4096, batch=4)  # segments of ~20 records
    want = []  # records in the store, oldest first
    out = []  # batches reserved, oldest first
    got = []
    i = 0
    for _ in range(600):
        op = random.randrange(7)
        if op <= 1:
            sp.put(rec(i))
            want.append(rec(i))
            i += 1
        elif op == 2:
            b = sp.peek(random.randrange(1, 6))
            held = sum(len(x) for x in out)
            assert b == want[held : held + len(b)], (b, held)
            if b:
                out.append(b)
        elif op in (3, 6) and out:
            n = len(out.pop(0))
            sp.commit(n)
            got.extend(want[:n])
            del want[:n]
        elif op == 4 and out:
            sp.release(len(out.pop()))
        else:
            sp.flush()
        assert sp.depth() == len(want) and sp.dropped == 0, (sp.depth(), len(want))
    while out:
        sp.commit(len(out.pop(0)))
    got.extend(drain(sp))
    assert got == [rec(k) for k in range(i)] and sp.dropped == 0
