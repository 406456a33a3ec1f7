"""Config files on flash: read, merge secrets, write atomically, keep the last-good copy.

Small on purpose: the running node uses it (commands, last-good) without loading the validator.

    from node import cfgfile
    doc, problems = cfgfile.load_doc("config.json", "secrets.json")
"""

import json


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


def read_json(path):
    """Return (doc, None) or (None, message) for a missing or unparsable file."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, "%s: cannot be read (missing?)" % path
    try:
        return json.loads(text), None
    except (ValueError, TypeError) as e:
        return None, "%s: not valid JSON (%s)" % (path, e)


def load_doc(path, secrets=None, need_secrets=False):
    """Read config and merge secrets (optional unless need_secrets). Returns (doc, messages)."""
    doc, err = read_json(path)
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


def save_json(path, doc):
    """Write atomically: a power cut leaves either the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    import os

    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(tmp, path)


def keep_good(doc, lastgood="config.lastgood.json"):
    """Store `doc` (the merged, valid config) as the last-good copy."""
    save_json(lastgood, doc)
