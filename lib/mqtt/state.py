"""The robust wrapper's connection states, as status()["state"] reports them (one home for the
wrapper and its lazily imported connect path; mqtt.robust exports them too)."""

STOPPED = "stopped"  # not started, or disconnect() was called
LINK_DOWN = "link_down"  # waiting for the WLAN station to come up
BACKOFF = "backoff"  # waiting for the next connect attempt
CONNECTING = "connecting"  # TCP connect or CONNACK under way
CONNECTED = "connected"
