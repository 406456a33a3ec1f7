# An empty scratch folder per call, unique across processes (MicroPython tests may run in
# parallel), for tests that write files as the node does on flash.
import os

_n = [0]


def fresh_dir(prefix):
    _n[0] += 1
    d = "/tmp/%s_%d_%d" % (prefix, int.from_bytes(os.urandom(4), "little"), _n[0])
    try:
        os.mkdir(d)
    except OSError:
        pass
    for f in os.listdir(d):
        os.remove(d + "/" + f)
    return d
