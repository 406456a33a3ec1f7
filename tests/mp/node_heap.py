# Imported first by the node tests that build the whole node or run the config validator.
# These tests plus the node (validator, app, fakes, test module compiled from source) need more
# than `--mp-heap=64K` on the 64-bit Unix port, where objects take about twice the room they
# take on the ESP32. The node's own heap on a small board is measured by bench/bench_node.py
# (the whole node, compiled, under -X heapsize=64K); here such a heap means "skip, saying why".
import gc


class SkipTest(Exception):
    pass


def need(kb, why):
    """Skip this test, saying why, in a heap smaller than kb KB (for tests whose own records,
    not the node, take the room: a fake broker that keeps every message to check them)."""
    gc.collect()
    if gc.mem_free() + gc.mem_alloc() < kb * 1024:
        raise SkipTest(why)


gc.collect()
if gc.mem_free() + gc.mem_alloc() < 120 * 1024:
    raise SkipTest(
        "node tests need more than a 64K heap on the 64-bit Unix port; the node's "
        "small-heap figure comes from bench/bench_node.py"
    )
