"""`python tools/nodectl ...` (from anywhere) and `python -m nodectl ...` (with tools/ on the
path) both land here."""

import sys
from pathlib import Path

if __package__ != "nodectl":
    # Run as a folder (`python tools/nodectl`) or as tools.nodectl: make `nodectl` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodectl.cli import main  # noqa: E402

sys.exit(main())
