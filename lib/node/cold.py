"""Cold parts: modules the node imports for a rare job and then drops from the heap.

On a 64 KB heap the code of a module (its bytecode and constants) is worth more than the few
milliseconds a re-import costs, so the validator, commands, discovery, diagnostics and safe-mode
helpers are imported where they are needed and `unload()`ed after.

    from node import cold
    from node import diag
    text = diag.status(node)
    cold.unload("node.diag")
"""

import gc
import sys


def unload(*names):
    """Forget modules: drop them from sys.modules and from their package's attributes (the
    package keeps each imported submodule as an attribute), then collect."""
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, short = name.rpartition(".")
        p = sys.modules.get(pkg) if pkg else None
        if p is not None and short in p.__dict__:
            try:
                delattr(p, short)
            except (AttributeError, TypeError):
                pass
    gc.collect()
