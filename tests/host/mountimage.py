# Runs in the MicroPython Unix port: mount a LittleFS image the way the ESP32 firmware mounts its
# vfs partition, and print what it holds as one JSON line.
#   micropython mountimage.py IMAGE BLOCK_COUNT
# The block device reports BLOCK_COUNT blocks of 4096 (the partition geometry), reads come from
# the image file and writes stay in RAM, so the image is never changed. Exit 2 if mounting fails.
import binascii
import hashlib
import json
import os
import sys
import vfs

BLOCK = 4096


class RAMBlockDev:
    def __init__(self, path, count):
        self.f = open(path, "rb")  # noqa: SIM115  (held for the mount's lifetime)
        self.count = count
        self.dirty = {}

    def readblocks(self, n, buf, off=0):
        mv = memoryview(buf)
        done = 0
        while done < len(buf):
            blk, boff = n + (off + done) // BLOCK, (off + done) % BLOCK
            take = min(BLOCK - boff, len(buf) - done)
            if blk in self.dirty:
                mv[done : done + take] = self.dirty[blk][boff : boff + take]
            else:
                self.f.seek(blk * BLOCK + boff)
                got = self.f.readinto(mv[done : done + take])
                if got is None or got < take:  # past the end of a short image: erased flash
                    for i in range(done + (got or 0), done + take):
                        mv[i] = 0xFF
            done += take

    def writeblocks(self, n, buf, off=0):
        done = 0
        while done < len(buf):
            blk, boff = n + (off + done) // BLOCK, (off + done) % BLOCK
            take = min(BLOCK - boff, len(buf) - done)
            if blk not in self.dirty:
                cur = bytearray(BLOCK)
                self.readblocks(blk, cur)
                self.dirty[blk] = cur
            self.dirty[blk][boff : boff + take] = buf[done : done + take]
            done += take

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase
            self.dirty[arg] = bytearray(b"\xff" * BLOCK)
            return 0
        return 0


def walk(d, out):
    for e in os.ilistdir(d):
        p = d + "/" + e[0]
        if e[1] == 0x4000:
            walk(p, out)
        else:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                h.update(f.read())
            out[p[len("/img/") :]] = binascii.hexlify(h.digest()).decode()


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    try:
        fs = vfs.VfsLfs2(RAMBlockDev(path, count))
        vfs.mount(fs, "/img")
    except OSError as e:
        print(json.dumps({"error": e.errno}))
        sys.exit(2)
    files = {}
    walk("/img", files)
    st = os.statvfs("/img")
    print(json.dumps({"files": files, "bsize": st[0], "blocks": st[2], "free": st[3]}))


main()
