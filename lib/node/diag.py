"""Diagnostics: the periodic status document and the retained per-boot info document.
Imported for one document and dropped again (node.cold).

    from node import diag
    text = diag.status(node)      # JSON text for <base>/diag
    text = diag.info(node)        # JSON text for <base>/info (retained, once per boot)
"""

import gc
import json

from node.link import tls_mode


def status(n):
    now = n.clock.ticks_ms()
    lk = n.link
    m = lk.status()
    gc.collect()
    ss = n.sensing.sensors
    d = {
        "uptime": n.time.uptime(now),
        "heap_free": gc.mem_free(),
        "heap_used": gc.mem_alloc(),
        "rssi": lk.rssi(),
        "reset_cause": n.board.reset_cause(),
        "reconnects": m.get("reconnects", 0),
        "mqtt_drops": m.get("drops", 0),
        "wifi_down_s": lk.wifi_down_ms(now) // 1000,
        "spool": n.delivery.pending(),
        "spool_dropped": n.delivery.dropped(),
        "sensor_errors": dict((s.name, s.errors) for s in ss),
        "loop_max_ms": n.loop_max_ms,
        "fw": n.fw,
        "config": n.cfg_id,
        "synced": n.time.synced,
    }
    if n.safe_reason:
        d["safe_mode"] = n.safe_reason
    t = n.time.unix()
    if t is not None:
        d["t"] = t
    return json.dumps(d)


def _boots(path):
    if path is None:
        return 0
    from node import cold, safemode

    b = safemode.boots(path)
    cold.unload("node.safemode")
    return b


def info(n):
    d = {
        "fw": n.fw,
        "board": n.cfg.get("board"),
        "mac": n.mac,
        "client_id": n.link.client_id,
        "tls": tls_mode(n.cfg["mqtt"]),  # "insecure": no certificate check (tls_insecure)
        "ip": n.link.ip(),
        "reset_cause": n.board.reset_cause(),
        "boot": _boots(n.guard),
        "config": n.cfg_id,
        "config_source": n.cfg_source,
        "config_problems": n.cfg_problems[:5],
        "safe_mode": n.safe_reason,
        "trial": n.trial is not None,
        "sensors": [s.name for s in n.sensing.sensors],
    }
    return json.dumps(d)
