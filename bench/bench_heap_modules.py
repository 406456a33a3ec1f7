#!/usr/bin/env python3
"""Where the node's heap goes, per module, on the device twin (32-bit, float32): prints tables.

1. For every module under lib/, the heap its import costs on its own (after gc; the modules it
   imports at top level are imported first, so each byte is counted once), lib as .mpy files and
   lib frozen into the twin, and whether the module is resident in the node's steady state (in
   sys.modules after a few thousand loop cycles against a broker, with discovery and diagnostics
   having run) or cold (imported for a job and dropped again).
2. The cold parts as the running node meets them: ms to import, ms per use, the heap they hold
   while loaded and what is left after they are dropped (should be 0: nothing keeps a
   reference), measured in the steady-state node on the twin, real time.

    make bench                        (builds the twin first)
    .venv/bin/python bench/bench_heap_modules.py [--form mpy] [--cycles 3000]
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import bench_node as BN  # noqa: E402
import bench_twin as BT  # noqa: E402

LIB = REPO / "lib"

# Each lib module in the order given (its top-level imports come before it): the heap its own
# import costs after gc, or the exception. The names a module brings (its qstrs) go into the
# interpreter's qstr pools, which grow in steps: whichever import crosses a step pays for the
# new pool. qstr_info() before and after each import tells the pool growth apart.
IMPORTS = (
    BN.SIM_LOAD
    + r"""
import micropython
for name in open("bench_modules.txt").read().split():
    gc.collect()
    a = gc.mem_alloc()
    micropython.qstr_info()
    try:
        __import__(name)
    except Exception as e:
        print("MOD %s err %r" % (name, e))
        micropython.qstr_info()
        continue
    gc.collect()
    print("MOD %s %d" % (name, gc.mem_alloc() - a))
    micropython.qstr_info()
"""
)
# Bytes a qstr pool spends per interned name besides its text (32-bit: pointer, hash, length).
QSTR_PER_NAME = 8


def parse_imports(out: str) -> dict[str, tuple[int, int] | None]:
    """name -> (heap after gc, the module's own share: that minus qstr pool growth plus its
    own names), or None when the import failed."""
    mods: list[tuple[str, int | None]] = []
    q = []
    for line in out.splitlines():
        if line.startswith("qstr pool:"):
            q.append({k: int(v) for k, v in (x.split("=") for x in line[11:].split(", "))})
        elif line.startswith("MOD "):
            _, name, val = line.split(" ", 2)
            mods.append((name, None if val.startswith("err") else int(val)))
    res: dict[str, tuple[int, int] | None] = {}
    for i, (name, v) in enumerate(mods):
        before, after = q[2 * i], q[2 * i + 1]
        grow = after["n_total_bytes"] - before["n_total_bytes"]
        names = after["n_str_data_bytes"] - before["n_str_data_bytes"]
        names += QSTR_PER_NAME * (after["n_qstr"] - before["n_qstr"])
        res[name] = None if v is None else (v, v - grow + names)
    return res


# The node in steady state, then each cold part imported, used and dropped as the node does it.
STEADY = (
    BN.SIM_LOAD
    + r"""
from node import startup, cold
node, reason, problems = startup.build()
del startup
cold.unload("node.startup", "node.cfgfile")
node.start()
node.board.wdt(60000)
gc.collect()
print("BOOT %d" % (gc.mem_alloc() - base))
import micropython
micropython.qstr_info()
for name in sorted(sys.modules):
    if name.split(".")[0] in ("node", "mqtt", "sensors"):
        print("ATBOOT " + name)
N = int(sys.argv[1])
for i in range(N):
    node.step()
    time.sleep_ms(20)
gc.collect()
print("STEADY %d %s" % (gc.mem_alloc() - base, node.link.online()))
import micropython
micropython.qstr_info()  # the names interned so far: they stay for good
for name in sorted(sys.modules):
    if name.split(".")[0] in ("node", "mqtt", "sensors"):
        print("RESIDENT " + name)

rt = getattr(time, "_rt", time)  # the simulated board's time is simulated: real time here


def us():
    return rt.ticks_us()


def cold_part(label, imp, use, drop):
    gc.collect()
    a = gc.mem_alloc()
    t0 = us()
    m = imp()
    t1 = us()
    gc.collect()
    held = gc.mem_alloc() - a
    t2 = us()
    what = use(m)
    t3 = us()
    del m
    cold.unload(*drop)
    for _ in range(50):  # what the part sent is the wrapper's until acknowledged
        node.step()
        time.sleep_ms(20)
    gc.collect()
    left = gc.mem_alloc() - a
    print("COLD %s|%d|%d|%d|%d|%s" % (label, rt.ticks_diff(t1, t0), rt.ticks_diff(t3, t2),
                                      held, left, what))


def imp_config():
    from node import config
    return config


def use_config(config):
    from node import cfgfile
    p = cfgfile.path
    cfg, source, problems = config.load(p(cfgfile.CONFIG), p(cfgfile.SECRETS), p(cfgfile.LASTGOOD))
    return "load + validate config.json: %s" % source


def imp_cmd():
    from node import cmdexec
    return cmdexec


def use_cmd(cmdexec):
    now = time.ticks_ms()
    cmdexec.handle(node, b'{"cmd":"get_config","id":"bench"}', False, now)
    cmdexec.handle(node, b'{"cmd":"read","id":"bench"}', False, now)
    return "get_config + read, parsed, run, result published"


def imp_disc():
    from node import discovery
    return discovery


def use_disc(discovery):
    a = discovery.Announcer(node.cfg, node.topics, node.mac, node.fw, memory="bench_disc.json")
    now = time.ticks_ms()
    a.schedule(now, 0)
    k = 0
    while a.pending():
        m = a.step(now)
        if m is not None:
            k += 1
    return "one discovery round, %d messages built" % k


def imp_diag():
    from node import diag
    return diag


def use_diag(diag):
    return "status + info documents, %d B" % (len(diag.status(node)) + len(diag.info(node)))


def imp_store():
    from mqtt.store import Store
    return Store


def use_store(Store):
    for f in ("bench_spool.dat.0", "bench_spool.dat.1", "bench_spool.dat.pos"):
        try:
            import os
            os.remove(f)
        except OSError:
            pass
    st = Store("bench_spool.dat", 4, 32768, 1)
    for i in range(100):
        st.put(b'{"t":%d,"s":"bme280","Temp":"21.5","Hum":"45"}' % (1780000000 + i))
    st.flush()
    t0 = us()
    st = Store("bench_spool.dat", 4, 32768, 1)  # as after a reboot: scan the segments
    k = 0
    while True:
        recs = st.peek(10)
        if not recs:
            break
        k += len(recs)
        st.commit()
    return "reopen + replay %d records in batches of 10 (%d ms of it reopen+replay)" % (
        k, rt.ticks_diff(us(), t0) // 1000)


def imp_sleep():
    from node.sleep import Sleeper
    return Sleeper


def use_sleep(Sleeper):
    sl = Sleeper({"interval": 60, "awake_cap": 10}, node.board, time, time.ticks_ms())
    sl.save(True, True)
    return "read RTC memory, save the wake facts"


def imp_safe():
    from node.safemode import BootGuard
    return BootGuard


def use_safe(BootGuard):
    g = BootGuard("bench_boot.json")
    r = g.begin(3, True, False)
    g.good()
    return "boot counted and marked good (%s)" % r


cold_part("config validation", imp_config, use_config, ("node.config", "node.cfgfile"))
cold_part("commands (cmdexec)", imp_cmd, use_cmd, ("node.cmdexec", "node.commands", "node.cfgfile"))
cold_part("discovery", imp_disc, use_disc, ("node.discovery", "node.cfgfile"))
cold_part("diagnostics", imp_diag, use_diag, ("node.diag",))
cold_part("spool replay (resident store)", imp_store, use_store, ())
cold_part("sleep entry", imp_sleep, use_sleep, ("node.sleep",))
cold_part("safe mode (boot guard)", imp_safe, use_safe, ("node.safemode",))
# Where the steady state's data lives: each part of the node let go in turn, the bytes a gc
# then frees (what two parts share is freed with the last one to let go).
from node import log


def free(label, drop):
    gc.collect()
    a = gc.mem_alloc()
    drop()
    gc.collect()
    print("PART %s|%d" % (label, a - gc.mem_alloc()))


free("sensing: sensors, drivers, filter chains", lambda: setattr(node, "sensing", None))
free("delivery: store RAM window, latest values", lambda: setattr(node, "delivery", None))
free("link: WiFi, MQTT wrapper, client, outbox", lambda: setattr(node, "link", None))
free("timekeeper", lambda: setattr(node, "time", None))
free("log ring and states", lambda: (log.ring.clear(), log._state.clear()))
free("config (normalized, kept by the node)", lambda: setattr(node, "cfg", None))
free("the rest of the Node object, board, topics", lambda: globals().pop("node"))
gc.collect()
print("CODE %d" % (gc.mem_alloc() - base))
"""
)


def module_names() -> list[str]:
    out = []
    for f in sorted(LIB.rglob("*.py")):
        parts = list(f.relative_to(LIB).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def _top_level_imports(tree: ast.Module, mod: str, known: set[str]) -> set[str]:
    """Lib modules imported when `mod` is imported: module-level statements only (also inside a
    module-level try or if), not function bodies, which run later."""
    found: set[str] = set()

    def visit(stmts):
        for n in stmts:
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    base = ".".join(mod.split(".")[: -n.level] + ([base] if base else []))
                names = [
                    base + "." + a.name if base + "." + a.name in known else base for a in n.names
                ]
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(n, field, None)
                    if sub and not isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                        visit(sub)
                continue
            for name in names:
                # importing a.b imports the package a first
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    p = ".".join(parts[:i])
                    if p in known and p != mod:
                        found.add(p)

    visit(tree.body)
    return found


def import_order() -> list[str]:
    """Every lib module, each after the lib modules its import pulls in."""
    names = module_names()
    known = set(names)
    deps = {}
    for m in names:
        f = LIB / (m.replace(".", "/") + ".py")
        if not f.exists():
            f = LIB / m.replace(".", "/") / "__init__.py"
        deps[m] = _top_level_imports(ast.parse(f.read_text()), m, known)
    order: list[str] = []

    def add(m, seen=()):
        if m in order or m in seen:
            return
        for d in sorted(deps[m]):
            add(d, seen + (m,))
        order.append(m)

    for m in names:
        add(m)
    return order


def run_mp(interp: BN.Interp, dev: Path, env: dict, script: str, args: list[str], heap: int) -> str:
    (dev / "bench_probe.py").write_text(script)
    r = subprocess.run(
        [interp.path, "-X", "heapsize=%d" % heap, "bench_probe.py", *args],
        cwd=dev,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(
            "twin run failed (exit %d):\n%s" % (r.returncode, (r.stdout + r.stderr)[-3000:])
        )
    return r.stdout


def bench_form(form: str, port: int, cycles: int, work: Path) -> dict:
    interp = BN.Interp(str(BT.TWIN[form]), twin=True, frozen=form == "frozen")
    ev = BN.Events(port, "Bench/Heap")
    try:
        dev, env, sim_base = BN.prepare(ev.proxy.port, work / form, interp)
        (dev / "bench_modules.txt").write_text("\n".join(import_order()))
        heap = sim_base + 256 * 1024
        mods = parse_imports(run_mp(interp, dev, env, IMPORTS, [], heap))
        out = run_mp(interp, dev, env, STEADY, [str(cycles)], heap)
    finally:
        ev.close()
    resident = [x.split()[1] for x in out.splitlines() if x.startswith("RESIDENT ")]
    at_boot = [x.split()[1] for x in out.splitlines() if x.startswith("ATBOOT ")]
    boot = [x.split()[1] for x in out.splitlines() if x.startswith("BOOT ")]
    qpool = [x.split("n_total_bytes=")[1] for x in out.splitlines() if x.startswith("qstr pool")]
    steady = [x.split() for x in out.splitlines() if x.startswith("STEADY ")]
    cold = [x[5:].split("|") for x in out.splitlines() if x.startswith("COLD ")]
    parts = [x[5:].split("|") for x in out.splitlines() if x.startswith("PART ")]
    parts += [
        ["left: modules (code, names), sys.modules", x.split()[1]]
        for x in out.splitlines()
        if x.startswith("CODE ")
    ]
    return {
        "mods": mods,
        "resident": resident,
        "at_boot": at_boot,
        "boot": boot,
        "qpool": qpool,
        "steady": steady,
        "cold": cold,
        "parts": parts,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=3000)
    ap.add_argument("--form", choices=("frozen", "mpy"), action="append")
    args = ap.parse_args()
    forms = args.form or ["mpy", "frozen"]
    for f in forms:
        if not BT.TWIN[f].exists():
            print("%s is missing: run `make bench-twin` (it builds the twin)" % BT.TWIN[f])
            return 2
    from tests.fixtures.broker import Broker, make_certs

    work = Path(tempfile.mkdtemp(prefix="bench-heapmod-"))
    broker = Broker(work / "broker", make_certs(work / "certs"))
    broker.start()
    res = {}
    try:
        for f in forms:
            res[f] = bench_form(f, broker.port, args.cycles, work)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("device twin (32-bit, float32): heap each lib module's import costs (B, after gc):")
    print("  measured: the heap taken by the import, qstr pool growth included (the pools grow")
    print("  in steps, paid by whichever import crosses one); own: without the pool growth but")
    print(
        "  with the module's own names. Where it is after %d loop cycles of the bench node"
        % args.cycles
    )
    print("  (default scenario's sensors): resident, or cold (dropped after use).")
    head = "".join("  %8s %6s" % (f + " meas", "own") for f in forms)
    print("  %-22s%s  %s" % ("module", head, "steady state"))
    first = res[forms[0]]
    total = {f: {"resident": [0, 0], "cold": [0, 0]} for f in forms}
    for name in import_order():
        where = "resident" if name in first["resident"] else "cold"
        if name in first["at_boot"] and where == "cold":
            where = "cold (loaded at boot)"
        elif name not in first["at_boot"] and where == "resident":
            where = "resident (loaded after boot)"
        cols = ""
        for f in forms:
            v = res[f]["mods"].get(name)
            if v is None:
                cols += "  %8s %6s" % ("-", "-")
                continue
            t = total[f][where.split()[0]]
            t[0] += v[0]
            t[1] += v[1]
            cols += "  %8d %6d" % v
        print("  %-22s%s  %s" % (name, cols, where))
    for where in ("resident", "cold"):
        cols = "".join("  %8d %6d" % tuple(total[f][where]) for f in forms)
        print("  %-22s%s" % ("sum " + where, cols))
    for f in forms:
        for s in res[f]["boot"]:
            print("  %s: node allocated after gc right after boot %s B" % (f, s))
        q = res[f]["qpool"]
        if len(q) >= 2:
            print(
                "  %s: of it qstr pools (interned names, never freed, those of cold modules"
                " too): %s B after boot, %s B in steady state" % (f, q[0], q[1])
            )
        for s in res[f]["steady"]:
            print(
                "  %s: node allocated after gc in steady state %s B (online %s)" % (f, s[1], s[2])
            )
    print("where the steady-state heap is (B freed when each part is let go, in this order):")
    for f in forms:
        for label, n in res[f]["parts"]:
            print("  %-6s %-45s %6s B" % (f, label, n))
    print(
        "cold parts in the steady-state node (twin, real time): import ms, use ms, heap held while"
    )
    print("loaded (B), heap left after dropping it (B, 0: nothing keeps a reference):")
    for f in forms:
        for label, imp, use, held, left, what in res[f]["cold"]:
            print(
                "  %-6s %-30s import %6.1f ms  use %7.1f ms  held %6s B  left %5s B  (%s)"
                % (f, label, int(imp) / 1000, int(use) / 1000, held, left, what)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
