"""machine.I2C and SoftI2C for the simulated board (re-exported by machine.py)."""

import errno

import simenv

_clock = simenv.clock
_pin_id = simenv._sw.pin_id


# ---- I2C ------------------------------------------------------------------------------------
_DEFAULT_I2C = {0: (18, 19), 1: (25, 26)}  # ESP32 port defaults (scl, sda)


class I2C:
    """Hardware/soft I2C on the simulated wires: devices are found by the SDA pin."""

    def __init__(self, id=-1, *, scl=None, sda=None, freq=400000, timeout=50000):
        b = simenv.board.get("i2c", {})
        if scl is None and sda is None:
            if id == b.get("id", 0) and "sda" in b:
                scl, sda = b["scl"], b["sda"]
            elif id in _DEFAULT_I2C:
                scl, sda = _DEFAULT_I2C[id]
            else:
                raise ValueError("I2C(%r) doesn't exist" % (id,))
        self._scl = _pin_id(scl)
        self._sda = _pin_id(sda)
        self._freq = freq
        self._w = simenv.i2c_wires(self._sda)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._freq = freq

    def deinit(self):
        pass

    def sim_attach(self, model):
        """Sim side: put a device model on these wires."""
        return self._w.attach(model)

    def _dev(self, addr):
        _clock.true_us()
        w = self._w
        if w.stuck:
            raise OSError(errno.ETIMEDOUT)
        for d in w.devices:
            if d.active_fault() == "bus_stuck":
                raise OSError(errno.ETIMEDOUT)
        d = w.device(addr)
        if d is None or not d.acks():
            raise OSError(errno.ENODEV)
        return d

    def scan(self):
        out = []
        for a in range(0x08, 0x78):
            try:
                self._dev(a)
                out.append(a)
            except OSError as e:
                if e.errno == errno.ETIMEDOUT:
                    raise
        return out

    def _write(self, addr, data):
        d = self._dev(addr)
        try:
            d.transfer_write(data)
        except simenv.Nack:
            raise OSError(errno.ENODEV)
        return d

    def _read(self, d, n):
        try:
            return d.transfer_read(n)
        except simenv.Nack:
            raise OSError(errno.ENODEV)

    def writeto(self, addr, buf, stop=True):
        self._write(addr, bytes(buf))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        self._write(addr, data)
        return len(data)

    def readfrom(self, addr, nbytes, stop=True):
        return bytes(self._read(self._dev(addr), nbytes))

    def readfrom_into(self, addr, buf, stop=True):
        data = self._read(self._dev(addr), len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def _memaddr(self, memaddr, addrsize):
        if addrsize == 16:
            return bytes((memaddr >> 8, memaddr & 0xFF))
        return bytes((memaddr & 0xFF,))

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._write(addr, self._memaddr(memaddr, addrsize) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        d = self._write(addr, self._memaddr(memaddr, addrsize))
        return bytes(self._read(d, nbytes))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        d = self._write(addr, self._memaddr(memaddr, addrsize))
        data = self._read(d, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)
