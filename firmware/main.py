# main.py: the guarded start of the node. A crash in the app must never become a boot loop:
# the boot counter (node.safemode) sends repeated failures into safe mode, and if even that
# fails we wait before resetting, so the REPL and mpremote stay reachable.
import time

_T0 = time.ticks_ms()  # the deep-sleep awake cap counts from here

import sys  # noqa: E402


def _build(force_safe=None):
    # Start-up code runs once: build the node, then give that code's heap back.
    from node import cold, startup

    node, _, _ = startup.build(t_reset=_T0, force_safe=force_safe)
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
    try:
        _fallback(e)
    except KeyboardInterrupt:
        print("main: stopped (Ctrl-C)")
    else:
        time.sleep(30)
        import machine

        machine.reset()
