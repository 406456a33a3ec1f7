"""The config-file lifecycle on flash, in one place: read (strict JSON, bounded), merge secrets,
atomic write, last-good copy, set_config trial and revert, and changes made by commands.

Files (all under `ROOT`, the device's root folder):
  config.json           the user's config;  secrets.json  merged over it (optional)
  config.lastgood.json  the merged config of the last healthy boot (fallback when invalid)
  config.trial          a set_config on trial: {"timeout": s, "boots": n}
  config.json.bak       the config to go back to when the trial is not confirmed

Validation is not here: the validator (node.config) is the largest module of the node and is
loaded only by whoever must validate, who passes its `validate` in. node.config itself uses the
file helpers below, so the dependency runs one way.

    from node import cfgfile
    doc, problems = cfgfile.load_doc(cfgfile.path("config.json"), cfgfile.path("secrets.json"))
    trial = cfgfile.trial_begin_boot()       # startup: None, or the running trial
"""

import json
import os

ROOT = ""  # the device's root; tests point it elsewhere
CONFIG = "config.json"
SECRETS = "secrets.json"
LASTGOOD = "config.lastgood.json"
TRIAL = "config.trial"
BACKUP = "config.json.bak"
TRIAL_BOOTS = 2  # boots a set_config may take to be confirmed before it is reverted


def path(name):
    return ROOT + name


def remove(p):
    """Remove a file; a missing one is fine."""
    try:
        os.remove(p)
    except OSError:
        pass


def merge(base, over):
    """Merge `over` (secrets) into `base` recursively; lists and scalars replace. Returns base."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    for k in over:
        if k in base and isinstance(base[k], dict) and isinstance(over[k], dict):
            merge(base[k], over[k])
        else:
            base[k] = over[k]
    return base


# Reading is bounded before anything is parsed: a config is a few KB; a bigger file is a
# mistake (or an attack) and would take the heap the node needs.
MAX_BYTES = 16384


def parse_json(data, name=CONFIG):
    """Bytes or text of a file a user writes -> (object, None) or (None, "name: what, where").

    Total: the size is checked before anything is decoded (MAX_BYTES), then the encoding
    (UTF-8, a bad byte named with its offset), then strict JSON with line and column (the
    device's json accepts a trailing or missing comma, which the host refuses), then json.loads
    and an object at the top; no exception escapes."""
    try:
        if len(data) > MAX_BYTES:
            return None, "%s: %d bytes, at most %d; a config is a few KB" % (
                name,
                len(data),
                MAX_BYTES,
            )
        from node import cold, jsoncheck

        # Kept as bytes throughout: a decoded copy would double the peak for nothing.
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            data = bytes(data)  # a bytearray
        at = jsoncheck.bad_utf8_at(data)
        err = None if at >= 0 else jsoncheck.check(data)
        cold.unload("node.jsoncheck")
        if at >= 0:
            return None, (
                "%s: not UTF-8 text at byte %d (0x%02x); save the file as UTF-8"
                % (name, at, data[at])
            )
        if err:
            return None, "%s: not valid JSON: %s" % (name, err)
        doc = json.loads(data)
        if not isinstance(doc, dict):
            # `null` or `[]` would otherwise pass as "nothing to check"
            t = json.dumps(doc)
            return None, "%s: expected a JSON object {...} at the top, got %s" % (
                name,
                t if len(t) <= 60 else t[:57] + "...",
            )
        return doc, None
    except MemoryError:
        return None, "%s: too big to read in the memory available" % name
    except Exception as e:  # noqa: BLE001 - reading must answer, never raise
        return None, "%s: not valid JSON (%s)" % (name, type(e).__name__)


def read_json(p):
    """(object, None) or (None, message) for a file on flash; reads at most MAX_BYTES + 1.

    The size is asked first, so a 700-byte file takes 700 bytes of heap, not MAX_BYTES."""
    try:
        n = os.stat(p)[6]
        with open(p, "rb") as f:
            data = f.read((n if n < MAX_BYTES else MAX_BYTES) + 1)
    except OSError:
        return None, "%s: cannot be read (missing?)" % p
    except MemoryError:
        return None, "%s: too big to read in the memory available" % p
    return parse_json(data, p)


def load_doc(p, secrets=None, need_secrets=False):
    """Read config and merge secrets (optional unless need_secrets). Returns (doc, messages)."""
    doc, err = read_json(p)
    if err:
        return None, [err]
    if secrets:
        sec, err = read_json(secrets)
        if err and (need_secrets or not err.endswith("(missing?)")):
            return None, [err]
        if sec is not None:
            if not isinstance(sec, dict):
                return None, ["%s: expected a JSON object {...}" % secrets]
            doc = merge(doc, sec)
    return doc, []


def save_json(p, doc):
    """Write atomically: a power cut leaves either the old or the new file."""
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    remove(p)
    os.rename(tmp, p)


def keep_good(doc, lastgood=LASTGOOD):
    """Store `doc` (the merged, valid config) as the last-good copy."""
    save_json(lastgood, doc)


def merged():
    """config.json with secrets.json merged over it, or None when config.json is unreadable."""
    return load_doc(path(CONFIG), path(SECRETS))[0]


def _with_secrets(doc):
    m = json.loads(json.dumps(doc))  # a deep copy: secrets never reach config.json
    sec, _ = read_json(path(SECRETS))
    if isinstance(sec, dict):
        m = merge(m, sec)
    return m


# ---- trial of a set_config -----------------------------------------------------------------
def trial_begin_boot():
    """At boot: the trial marker of an unconfirmed set_config (its boot counted), or None.
    A trial that did not reach a confirm in TRIAL_BOOTS boots is reverted here."""
    t, _ = read_json(path(TRIAL))
    if not isinstance(t, dict):
        return None
    t["boots"] = t.get("boots", 0) + 1
    if t["boots"] > TRIAL_BOOTS:
        revert()
        return None
    save_json(path(TRIAL), t)
    return t


def revert():
    """Put the config from before an unconfirmed set_config back; end the trial."""
    try:
        os.stat(path(BACKUP))
        remove(path(CONFIG))
        os.rename(path(BACKUP), path(CONFIG))
    except OSError:
        pass
    remove(path(TRIAL))


def confirm():
    """Keep the config on trial: it becomes the last-good copy."""
    keep_good(merged(), path(LASTGOOD))
    remove(path(TRIAL))
    remove(path(BACKUP))


def start_trial(new, timeout, validate, on_trial):
    """Write `new` as config.json on trial (applied by the reset that follows).

    Returns the validator's problems (nothing written) or []. The running config is kept as
    config.json.bak (and as last-good when valid) unless a trial is already running."""
    problems = validate(_with_secrets(new))
    if problems:
        return problems
    cur, _ = read_json(path(CONFIG))
    if not on_trial and cur is not None:
        save_json(path(BACKUP), cur)
        m = merged()
        if m is not None and not validate(m):
            keep_good(m, path(LASTGOOD))
    save_json(path(CONFIG), new)
    save_json(path(TRIAL), {"timeout": timeout, "boots": 0})
    return []


def change(mutate, validate, on_trial):
    """Apply `mutate(doc)` to config.json if the result stays valid. None or a reason."""
    doc, err = read_json(path(CONFIG))
    if doc is None:
        return err
    mutate(doc)
    m = _with_secrets(doc)
    if validate(m):
        return "the change would make config.json invalid; kept for this run only"
    save_json(path(CONFIG), doc)
    if not on_trial:
        keep_good(m, path(LASTGOOD))
    return None


def keep_healthy():
    """This boot ran healthy on config.json: keep it (merged) as last-good, without validating
    again (it was valid at boot; the validator stays unloaded)."""
    doc, errs = load_doc(path(CONFIG), path(SECRETS))
    if doc is not None and not errs:
        try:
            keep_good(doc, path(LASTGOOD))
        except OSError:
            pass
