"""Safe mode: decide at boot whether to start the full node or a minimal one, never loop.

A boot counter kept in a small file (it survives power loss and watchdog resets) counts boots
that did not become "good" (healthy for `good_after` seconds). When it reaches `bad_boots`, when
the config is invalid with no last-good copy, or when the boot button is held at reset, the node
starts in safe mode: network, MQTT, status and config commands only, with the reason published.
Safe mode itself does not count boots, so a fault cannot turn into a boot loop.

    g = BootGuard("bootstate.json")
    reason = g.begin(bad_boots=3, config_ok=True, button=False)   # None or a reason string
    ...healthy for a while...
    g.good()
"""

import json


class BootGuard:
    def __init__(self, path="bootstate.json"):
        self.path = path
        # open: this boot's bad count is not undone yet (by good(), or by a power-on next)
        self.state = {"bad": 0, "boots": 0, "open": False}
        try:
            with open(path) as f:
                d = json.load(f)
            if isinstance(d, dict):
                for k in self.state:
                    if k in d:
                        self.state[k] = d[k]
        except (OSError, ValueError):
            pass
        self.reason = None

    def _save(self):
        try:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.state, f)
            import os

            os.rename(tmp, self.path)
        except OSError:
            pass  # a read-only or full filesystem must not stop the boot

    @property
    def boots(self):
        return self.state["boots"]

    def begin(self, bad_boots=3, config_ok=True, button=False, power_on=False):
        """Count this boot; return the safe-mode reason or None for a normal start.

        power_on: this is a power-on reset (the supply came back, or the EN button): the boot
        before ended because the power went, not because the node failed, so it is not
        counted as a bad boot. A power flicker during a storm must not end in safe mode."""
        st = self.state
        st["boots"] = st.get("boots", 0) + 1
        if power_on and st.get("open"):
            st["bad"] = st.get("bad", 1) - 1
        st["open"] = False
        reason = None
        if button:
            reason = "boot button held"
        elif not config_ok:
            reason = "invalid config and no last-good copy"
        elif st.get("bad", 0) >= bad_boots:
            reason = "%d boots in a row failed before becoming healthy" % st["bad"]
        if reason is None:
            st["bad"] = st.get("bad", 0) + 1  # undone by good(), or by a power-on next
            st["open"] = True
        self._save()
        self.reason = reason
        return reason

    def good(self):
        """This boot ran healthy long enough: reset the bad-boot count."""
        if self.state.get("bad") or self.state.get("open"):
            self.state["bad"] = 0
            self.state["open"] = False
            self._save()

    def leave(self):
        """Next boot is a normal one (the leave_safe_mode command)."""
        self.state["bad"] = 0
        self.state["open"] = False
        self._save()


# The running node keeps only the counter file's path, not a BootGuard: an object would keep
# this module's class (its code, with lib/ as .mpy) in the heap for the whole run.
def good(path):
    """BootGuard(path).good(): this boot ran healthy long enough."""
    BootGuard(path).good()


def leave(path):
    """BootGuard(path).leave(): the next boot is a normal one."""
    BootGuard(path).leave()


def boots(path):
    """Boots counted so far."""
    return BootGuard(path).boots
