"""network for the simulated board: WLAN(STA_IF/AP_IF) as the ESP32 port has it, with the
access point, password, RSSI and outage windows from the scenario's "wifi" section.

Traffic itself goes over the host's loopback; an outage here changes what WLAN reports
(isconnected() False, status() STAT_CONNECTING / STAT_NO_AP_FOUND) and makes a connect wait, as
the node app sees it. Breaking sockets is the fault proxy's job.
"""

import simenv
import scenario

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_hostname = ["esp32"]
_ifaces = {}


def hostname(name=None):
    if name is None:
        return _hostname[0]
    _hostname[0] = name


def country(c=None):
    return "EU" if c is None else None


def _cfg():
    w = scenario.wifi()
    return (
        w.get("ssid", "simnet"),
        w.get("password"),
        w.get("rssi", -60),
        w.get("connect_ms", 1500),
        w.get("ip", "127.0.0.1"),
    )


def WLAN(interface_id=STA_IF):
    w = _ifaces.get(interface_id)
    if w is None:
        w = _ifaces[interface_id] = _WLAN(interface_id)
    return w


class _WLAN:
    def __init__(self, iface):
        self._if = iface
        self._active = False
        self._ssid = None
        self._key = None
        self._since = None  # sim us when the current (re)connect attempt began
        self._reconnects = -1
        self._tries = 0
        self._txpower = 20
        self._ip = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._ssid = None

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid
        self._key = key
        self._since = simenv.clock.true_us()
        self._tries = 0

    def disconnect(self):
        self._ssid = None

    def _state(self):
        if self._if == AP_IF:
            return STAT_GOT_IP if self._active else STAT_IDLE
        if not self._active or self._ssid is None:
            return STAT_IDLE
        ssid, pw, _rssi, cms, _ip = _cfg()
        if self._ssid != ssid:
            return STAT_NO_AP_FOUND
        if pw is not None and self._key != pw:
            return STAT_WRONG_PASSWORD
        now = simenv.clock.true_us()
        if scenario.wifi_down():
            self._since = None
            return STAT_NO_AP_FOUND if not self._tries else STAT_CONNECTING
        if self._since is None:  # the AP is back: the driver reconnects on its own
            if self._reconnects >= 0 and self._tries >= self._reconnects:
                return STAT_NO_AP_FOUND
            self._tries += 1
            self._since = now
        if now - self._since < cms * 1000:
            return STAT_CONNECTING
        return STAT_GOT_IP

    def status(self, param=None):
        if param is None:
            return self._state()
        if param == "rssi":
            if self._state() != STAT_GOT_IP:
                raise OSError("STA is not connected")
            return _cfg()[2]
        raise ValueError("unknown status param")

    def isconnected(self):
        return self._state() == STAT_GOT_IP

    def config(self, *args, **kw):
        if kw:
            for k, v in kw.items():
                if k == "reconnects":
                    self._reconnects = v
                elif k in ("dhcp_hostname", "hostname"):
                    _hostname[0] = v
                elif k == "txpower":
                    self._txpower = v
                elif k in ("ssid", "key", "security", "pm", "channel", "password"):
                    pass
                else:
                    raise ValueError("unknown config param")
            return None
        k = args[0]
        if k == "mac":
            return _mac(self._if)
        if k == "reconnects":
            return self._reconnects
        if k in ("hostname", "dhcp_hostname"):
            return _hostname[0]
        if k in ("ssid", "essid"):
            return self._ssid or ""
        if k == "txpower":
            return self._txpower
        if k == "channel":
            return 6
        raise ValueError("unknown config param")

    def ifconfig(self, cfg=None):
        if cfg is not None:
            self._ip = cfg[0]
            return None
        if self.isconnected() or self._if == AP_IF:
            return (self._ip or _cfg()[4], "255.255.255.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def ipconfig(self, key):
        if key == "addr4":
            c = self.ifconfig()
            return (c[0], c[1])
        raise ValueError("unknown ipconfig param")

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        if scenario.wifi_down():
            return []
        ssid, pw, rssi, _c, _ip = _cfg()
        return [
            (
                ssid.encode(),
                b"\x24\x0a\xc4\x99\x99\x01",
                6,
                rssi,
                AUTH_WPA2_PSK if pw else AUTH_OPEN,
                False,
            )
        ]


def _mac(iface):
    import machine

    m = bytearray(machine.unique_id())
    m[5] = (m[5] + iface) & 0xFF  # the ESP32 derives the AP MAC from the station MAC
    return bytes(m)
