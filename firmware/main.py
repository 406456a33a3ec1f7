# main.py: the guarded start of the node. A crash in the app must never become a boot loop:
# the boot counter (node.safemode) sends repeated failures into safe mode, and if even that
# fails we wait before resetting, so the REPL and mpremote stay reachable.
import time

_T0 = time.ticks_ms()  # the deep-sleep awake cap counts from here

import sys  # noqa: E402


def _version():
    # An over-the-air version (node.ota: pointer, boot trial) goes first on sys.path. The node
    # package imported to read the pointer is dropped so it is imported again from there.
    try:
        from node import ota

        d = ota.boot()
        trial = "trial" in ota.read_pointer()
    except Exception as e:  # noqa: BLE001 - no OTA state must never stop the boot
        sys.print_exception(e)
        d, trial = None, False
    for k in ("node.ota", "node"):
        if k in sys.modules:
            del sys.modules[k]
    if d:
        sys.path.insert(0, d + "/lib")
    return trial


_TRIAL = _version()


def _ota_back(why):
    # A new version that crashes at start (or can only start in safe mode) goes back to the
    # previous one at once.
    sys.path.pop(0)
    for k in [k for k in sys.modules if k == "node" or k.startswith("node.")]:
        del sys.modules[k]
    from node import ota

    ota.rollback(None, why)
    import machine

    machine.reset()


def _build(force_safe=None):
    # Start-up code runs once: build the node, then give that code's heap back.
    from node import cold, startup

    node, reason, _ = startup.build(t_reset=_T0, force_safe=force_safe)
    if _TRIAL and reason and force_safe is None:
        # start-up caught the new version's failure and fell back to safe mode: not proven
        _ota_back("safe mode at start: %s" % reason)
    if node is None:
        startup.wait_for_config()  # nothing to reach the network with: never returns
        raise SystemExit  # (not reached)
    del startup
    cold.unload("node.startup", "node.cfgfile")
    return node


def _fallback(e):
    # The full node died: run the minimal (safe) node in this same boot, with the reason.
    try:
        _build("crashed: %r" % (e,)).run()
    except KeyboardInterrupt:
        raise
    except Exception as e2:  # noqa: BLE001
        sys.print_exception(e2)


try:
    _build().run()
except KeyboardInterrupt:
    print("main: stopped (Ctrl-C)")
except SystemExit:
    raise
except Exception as e:  # noqa: BLE001 - report, then fall back; never a tight loop
    sys.print_exception(e)
    if _TRIAL:
        _ota_back("crashed at start: %r" % (e,))
    try:
        _fallback(e)
    except KeyboardInterrupt:
        print("main: stopped (Ctrl-C)")
    else:
        time.sleep(30)
        import machine

        machine.reset()
