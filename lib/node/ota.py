"""Over-the-air updates on the device: receive a signed bundle in chunks straight to flash,
verify it, switch versions with one atomic pointer write, and fall back when the new version
does not prove itself.

Files (all under `ROOT`):
  ota.key          this node's verification key (32 raw bytes, written once by USB); it is
                   HMAC-SHA256(fleet_secret, node_id), so it verifies only this node's bundles
  ota/stage/       the bundle being received: manifest.json, then its files in order
  v/<version>/     installed versions (the running one and the previous one), each with
                   its manifest.json, against which boot() checks it before running it
  ota.ptr          the pointer: {"cur": "<version>", "prev": ..., "trial": boots or absent,
                   "state": "ok" | "trial" | "rolled back", "seq": last installed};
                   main.py reads it

Progress needs no file of its own: the bytes already on flash are the progress (a chunk half
written at a power cut is still a correct prefix), so after a drop or a reboot the next
expected offset is recomputed from the staged files' sizes.

Manifest payload: the JSON body, a newline, then the hex HMAC-SHA256 of the body bytes with
the node's key. Body: {"version": "1.2", "board": "esp32", "seq": n, "files": [[path, size,
sha256hex]]}. `seq` (the host's clock in ms when it packed the bundle) must be above the last
installed one's, kept in the pointer: a bundle recorded off the broker cannot be sent again to
take the node back to code it has replaced.

    r = Receiver("esp32")
    res = r.manifest(payload)        # {"ok": True, "next": 0} or {"ok": False, "reason": ...}
    res = r.chunk(offset, data)      # {"next": n} / {"done": "1.2"} / {"ok": False, ...}

An empty chunk at the expected offset means the host has no more bytes: short of the
manifest's total it is a truncated bundle (refused), at the total it switches a bundle that was
staged whole before a reboot.
"""

import json
import os
from hashlib import sha256

ROOT = ""  # the device's root; tests point it elsewhere
KEY = "ota.key"
STAGE = "ota/stage"
VERSIONS = "v"
PTR = "ota.ptr"
TRIAL_S = 120  # seconds a new version has to connect and publish (the manifest's trial_s)
TRIAL_BOOTS = 2  # boots a new version may take to confirm itself before it is rolled back
_BLOCK = 512  # bytes read at a time while hashing a file on flash


class Refused(Exception):
    """The bundle cannot be installed; the message says why (published as the reason)."""


def _p(name):
    return ROOT + name


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) from hashlib.sha256: the port may have no hmac module."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def _hex(b):
    return "".join("%02x" % x for x in b)


def _same(a, b):
    # Compare without stopping at the first difference (no timing hint about the signature).
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1


def _mkdirs(p):
    # Every folder above the file p (p's last part is not created).
    i = p.find("/", 1)
    while i > 0:
        try:
            os.mkdir(p[:i])
        except OSError:
            pass
        i = p.find("/", i + 1)


def _rmtree(p):
    try:
        names = os.listdir(p)
    except OSError:
        try:
            os.remove(p)
        except OSError:
            pass
        return
    for n in names:
        _rmtree(p + "/" + n)
    try:
        os.rmdir(p)
    except OSError:
        pass


def _file_sha(p):
    h = sha256()
    buf = bytearray(_BLOCK)
    mv = memoryview(buf)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return _hex(h.digest())


def _write_json(p, doc):
    # Atomic: a kill -9 leaves either the old file or the new one, never half of either.
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, p)


def read_pointer():
    try:
        with open(_p(PTR)) as f:
            d = json.load(f)
        if isinstance(d, dict):
            return d
    except (OSError, ValueError):
        pass
    return {}


def _check_body(body, board):
    try:
        m = json.loads(body)
    except ValueError:
        raise Refused("manifest: not valid JSON") from None
    if not isinstance(m, dict) or not isinstance(m.get("files"), list):
        raise Refused("manifest: no file list")
    v = m.get("version")
    if not isinstance(v, str) or not v or "/" in v or v.startswith("."):
        raise Refused("manifest: bad version %r" % (v,))
    if m.get("board") != board:
        raise Refused("bundle is for board %r, this node is %r" % (m.get("board"), board))
    s = m.get("seq")
    if not isinstance(s, int) or s < 1:
        raise Refused("manifest: bad sequence number %r" % (s,))
    for e in m["files"]:
        ok = isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
        if ok:
            ok = isinstance(e[1], int) and e[1] >= 0 and isinstance(e[2], str) and len(e[2]) == 64
        if not ok or ".." in e[0] or e[0].startswith("/"):
            raise Refused("manifest: bad file entry %r" % (e,))
    return m


class Receiver:
    """One node's side of a transfer; state lives on flash, so a new Receiver resumes."""

    def __init__(self, board, key=None):
        self.board = board
        self._key = key
        self.m = None  # the staged manifest (dict) once one was accepted
        try:
            with open(_p(STAGE + "/manifest.json")) as f:
                self.m = json.load(f)
        except (OSError, ValueError):
            self.m = None

    def key(self):
        if self._key is None:
            with open(_p(KEY), "rb") as f:
                self._key = f.read()
        return self._key

    def next_offset(self):
        """The next byte the node wants, from what is on flash (resume after drop or reboot)."""
        off = 0
        for path, size, _ in self.files():
            have = max(_size(_p(STAGE + "/" + path)), 0)  # an empty file is made at install
            if have < size:
                return off + have
            off += size
        return off

    def files(self):
        return self.m["files"] if self.m else []

    def total(self):
        return sum(e[1] for e in self.m["files"]) if self.m else 0

    def abort(self, reason):
        _rmtree(_p(STAGE))
        self.m = None
        return {"ok": False, "reason": reason}

    def manifest(self, payload):
        """Accept a signed manifest (bytes). Same version already staging: resume."""
        try:
            if isinstance(payload, str):
                payload = payload.encode()
            i = payload.rfind(b"\n")
            if i < 0:
                raise Refused("manifest: no signature line")
            body, sig = payload[:i], payload[i + 1 :].decode().strip()
            try:
                key = self.key()
            except OSError:
                raise Refused("no ota.key on this node (provision it by USB)") from None
            m = _check_body(body, self.board)  # board first: a clearer reason
            if not _same(sig, _hex(hmac_sha256(key, body))):
                raise Refused("bad signature")
            last = read_pointer().get("seq") or 0
            if m["seq"] <= last:  # an old bundle sent again: never back to code we replaced
                why = "bundle %d is not newer than the last installed (%d)"
                raise Refused(why % (m["seq"], last))
        except Refused as e:
            return {"ok": False, "reason": str(e)}
        if self.m and self.m == m:
            return {"ok": True, "version": m["version"], "next": self.next_offset()}
        _rmtree(_p(STAGE))
        _mkdirs(_p(STAGE + "/x"))
        _write_json(_p(STAGE + "/manifest.json"), m)
        self.m = m
        return {"ok": True, "version": m["version"], "next": 0}

    def chunk(self, offset, data):
        """Write `data` at bundle `offset`. Out of order: nothing written, the expected offset
        is returned. The last byte triggers verification and the switch."""
        if self.m is None:
            return {"ok": False, "reason": "no manifest staged"}
        want = self.next_offset()
        if not data and offset == want:
            # An empty chunk at the expected offset is the host saying it has no more bytes.
            if want < self.total():  # its bundle is shorter than its manifest
                return self.abort("bundle truncated: %d of %d bytes" % (want, self.total()))
            return self.install()  # all staged before a reboot, not switched yet: now
        if offset != want or not data:
            return {"ok": True, "next": want}
        pos = 0
        start = 0
        mv = memoryview(data)
        for path, size, sha in self.files():
            if offset < start + size and pos < len(data):
                p = _p(STAGE + "/" + path)
                _mkdirs(p)
                n = min(size - (offset - start), len(data) - pos)
                with open(p, "ab") as f:
                    f.write(mv[pos : pos + n])
                pos += n
                offset += n
                if offset == start + size and _file_sha(p) != sha:
                    return self.abort("%s: sha256 mismatch (corrupted in transfer)" % path)
            start += size
        if pos < len(data):
            return self.abort(
                "chunk runs past the end of the bundle (%d bytes)" % (len(data) - pos)
            )
        nxt = self.next_offset()
        if nxt < self.total():
            return {"ok": True, "next": nxt}
        return self.install()

    def install(self):
        """Verify every staged file again, then switch: a directory rename, a pointer write."""
        m = self.m or {"files": []}
        for path, size, sha in m["files"]:
            p = _p(STAGE + "/" + path)
            if size == 0 and _size(p) < 0:
                _mkdirs(p)
                open(p, "wb").close()  # no chunk carries an empty file
            if _size(p) != size:
                return self.abort("%s: truncated (%d of %d bytes)" % (path, _size(p), size))
            if _file_sha(p) != sha:
                return self.abort("%s: sha256 mismatch" % path)
        v = m["version"]
        ptr = read_pointer()
        cur = ptr.get("cur")
        if v == cur:
            return self.abort("version %s is already running" % v)
        if v == ptr.get("prev"):
            # Installing the previous version again: forget it as the fallback before its
            # folder goes, so a power cut while it is deleted leaves nothing pointing at half.
            ptr["prev"] = None
            _write_json(_p(PTR), ptr)
        _mkdirs(_p(VERSIONS + "/x"))
        dst = _p(VERSIONS + "/" + v)
        _rmtree(dst)  # a left-over of an earlier attempt at the same version
        # The manifest goes along: boot() checks the version against it before running it.
        os.rename(_p(STAGE), dst)
        t = m.get("trial_s")
        t = t if isinstance(t, int) and t > 0 else TRIAL_S
        ptr = {"cur": v, "prev": cur, "trial": 0, "trial_s": t, "state": "trial", "seq": m["seq"]}
        _write_json(_p(PTR), ptr)
        self.m = None
        # Keep only the new version and the previous one.
        for n in os.listdir(_p(VERSIONS)):
            if n not in (v, cur):
                _rmtree(_p(VERSIONS + "/" + n))
        return {"ok": True, "done": v}


def complete(version, hashes=False):
    """True when v/<version> holds every file its manifest lists at the listed size (and, with
    hashes, the listed SHA-256): what boot() checks so a version is run whole or not at all."""
    d = _p(VERSIONS + "/" + version)
    try:
        with open(d + "/manifest.json") as f:
            files = json.load(f)["files"]
        for path, size, sha in files:
            p = d + "/" + path
            if _size(p) != size or (hashes and _file_sha(p) != sha):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def boot():
    """At each boot (main.py): count a trial boot, roll back after TRIAL_BOOTS unconfirmed
    ones, and return the folder of the version to run (None: the USB-deployed files).

    The version is checked first: every file at its size, and on a trial boot every SHA-256
    too (a confirmed version was hashed when it was installed; sizes catch a folder that a
    power cut left half deleted). A version that fails the check is rolled back from, so the
    node runs a whole version or the USB files, never a mix."""
    ptr = read_pointer()
    if "trial" in ptr:
        if ptr["trial"] >= TRIAL_BOOTS:
            rollback(ptr, "not confirmed in %d boots" % TRIAL_BOOTS)
        elif not complete(ptr.get("cur") or "", True):
            rollback(ptr, "v/%s incomplete or corrupted" % ptr.get("cur"))
        else:
            ptr["trial"] += 1
            _write_json(_p(PTR), ptr)
        ptr = read_pointer()
    cur = ptr.get("cur")
    if cur and not complete(cur):
        rollback(ptr, "v/%s incomplete" % cur)
        ptr = read_pointer()
        cur = ptr.get("cur")  # the previous version, checked the same way (then no further)
        if cur and not complete(cur):
            rollback(ptr, "v/%s incomplete" % cur)
            cur = None
    if cur:
        return _p(VERSIONS + "/" + cur)
    return None


def rollback(ptr=None, why=""):
    """Point back at the previous version (None: the USB-deployed files)."""
    ptr = ptr or read_pointer()
    bad = ptr.get("cur")
    _write_json(
        _p(PTR),
        {
            "cur": ptr.get("prev"),
            "prev": None,
            "state": "rolled back",
            "bad": bad,
            "why": why,
            "seq": ptr.get("seq"),  # the rolled-back bundle is not taken again either
        },
    )


def confirm():
    """The new version connected and published: keep it. Returns True when a trial ended."""
    ptr = read_pointer()
    if "trial" not in ptr:
        return False
    del ptr["trial"]
    ptr["state"] = "ok"
    _write_json(_p(PTR), ptr)
    return True


def trial_expired(elapsed_s, timeout_s=None):
    """The app's check: a trial running longer than its time (the manifest's trial_s) without
    confirm() is rolled back now (the caller then resets). Returns True when it rolled back."""
    ptr = read_pointer()
    if "trial" not in ptr:
        return False
    t = timeout_s or ptr.get("trial_s") or TRIAL_S
    if elapsed_s >= t:
        rollback(ptr, "not connected and published within %d s" % t)
        return True
    return False


def enabled():
    """OTA is on for a node provisioned with its key."""
    return _size(_p(KEY)) > 0


def status():
    """For the info topic: {"version": ..., "update": state}."""
    ptr = read_pointer()
    return {"version": ptr.get("cur"), "update": ptr.get("state")}
