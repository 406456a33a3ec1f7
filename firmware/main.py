# main.py: the guarded start of the node. A crash in the app must never become a boot loop:
# the boot counter (node.safemode) sends repeated failures into safe mode, and if even that
# fails we wait before resetting, so the REPL and mpremote stay reachable.
import time

_T0 = time.ticks_ms()  # the deep-sleep awake cap counts from here

import sys  # noqa: E402


def _start():
    from node import app

    app.main(_T0)


def _fallback(e):
    # The full node died: run the minimal (safe) node in this same boot, with the reason.
    try:
        from node import app

        node, _, _ = app.build(force_safe="crashed: %r" % (e,))
        if node is not None:
            node.run()
    except KeyboardInterrupt:
        raise
    except Exception as e2:  # noqa: BLE001
        sys.print_exception(e2)


try:
    _start()
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
