"""The node's OTA topics: <base>/ota/manifest and <base>/ota/chunk in, <base>/ota/result out.

A chunk's payload is its 4-byte big-endian offset in the bundle, then the data. Every message
gets one result (JSON): {"ok": true, "next": n} asks for the bytes from n on (so a host that
lost track, or a node that rebooted, resumes there); {"ok": true, "done": v} means version v is
installed and the node resets into its trial; {"ok": false, "reason": ...} is a refusal. The
running version is untouched by all of it until the switch. Loaded per message, then dropped.

    from node import otamsg
    otamsg.handle(node, topic, payload, now)
"""

import json
import sys

from node import ota


def handle(n, topic, msg, now):
    tail = topic[len(n.topics.base) + 5 :]  # after "<base>/ota/"
    r = ota.Receiver(sys.platform)
    if tail == "manifest":
        res = r.manifest(msg)
    elif tail == "chunk" and len(msg) >= 4:
        res = r.chunk(int.from_bytes(msg[:4], "big"), memoryview(msg)[4:])
    else:
        return  # our own result topic, or not ours
    n.link.publish(n.topics.base + "/ota/result", json.dumps(res), False, 1)
    if res.get("done"):
        n.log("ota: version %s installed, resetting into its trial" % res["done"])
        n.shutdown("reset", now)


def state_text():
    """Retained on <base>/ota/state: the running version and the update state."""
    return json.dumps(ota.status())
