"""esp32 for the simulated board: NVS (persisted on commit() in SIM_STATE_DIR/nvs.json),
mcu_temperature() (scenario "mcu_temperature", default 45), a minimal Partition."""

import errno

import simenv

_ESP_ERR_NVS_NOT_FOUND = -4354
_store = [None]


def _load():
    if _store[0] is None:
        p = simenv.state_path("nvs.json")
        _store[0] = (simenv._load_json(p) if p else None) or {}
    return _store[0]


class NVS:
    def __init__(self, namespace):
        if not 0 < len(namespace) <= 15:
            raise ValueError("namespace must be 1..15 characters")
        self._ns = namespace
        self._pending = dict(_load().get(namespace, {}))

    def set_i32(self, key, value):
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("value out of range for i32")
        self._pending[key] = ["i32", value]

    def get_i32(self, key):
        v = self._pending.get(key)
        if v is None or v[0] != "i32":
            raise OSError(_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        return v[1]

    def set_blob(self, key, value):
        self._pending[key] = ["blob", "".join("%02x" % b for b in bytes(value))]

    def get_blob(self, key, buffer):
        v = self._pending.get(key)
        if v is None or v[0] != "blob":
            raise OSError(_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        data = bytes(int(v[1][i : i + 2], 16) for i in range(0, len(v[1]), 2))
        if len(buffer) < len(data):
            raise OSError(errno.EINVAL, "ESP_ERR_NVS_INVALID_LENGTH")
        for i, b in enumerate(data):
            buffer[i] = b
        return len(data)

    def erase_key(self, key):
        if key not in self._pending:
            raise OSError(_ESP_ERR_NVS_NOT_FOUND, "ESP_ERR_NVS_NOT_FOUND")
        del self._pending[key]

    def commit(self):
        s = _load()
        s[self._ns] = dict(self._pending)
        p = simenv.state_path("nvs.json")
        if p:
            simenv._save_json(p, s)


def mcu_temperature():
    return int(simenv.scenario_data.get("mcu_temperature", 45))


def raw_temperature():
    return int(mcu_temperature() * 9 / 5 + 32)


def wake_on_ext0(pin, level):
    pass


def wake_on_ext1(pins, level):
    pass


def wake_on_touch(wake):
    pass


def gpio_deep_sleep_hold(enable):
    pass


WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
HEAP_DATA = 4
HEAP_EXEC = 1


def idf_heap_info(caps):
    return [(110000, 60000, 50000, 58000)]


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1
    _TABLE = (
        ("factory", 0, 0, 0x10000, 0x1F0000),
        ("nvs", 1, 2, 0x9000, 0x6000),
        ("vfs", 1, 129, 0x200000, 0x200000),
    )

    def __init__(self, id, block_size=4096):
        if id in (Partition.BOOT, Partition.RUNNING):
            id = "factory"
        for row in self._TABLE:
            if row[0] == id:
                self._row = row
                return
        raise ValueError("partition not found")

    @classmethod
    def find(cls, type=TYPE_APP, subtype=0xFF, label=None, block_size=4096):
        return [
            cls(r[0])
            for r in cls._TABLE
            if r[1] == type
            and (subtype == 0xFF or r[2] == subtype)
            and (label is None or r[0] == label)
        ]

    def info(self):
        n, t, st, addr, size = self._row
        return (t, st, addr, size, n, False)

    def get_next_update(self):
        raise OSError(errno.ENOENT)

    @staticmethod
    def mark_app_valid_cancel_rollback():
        pass
