"""Root of the test suite: makes tests/ importable and loads our two plugins.

- pytest_mp: runs tests/mp/test_*.py inside the MicroPython Unix port, one item per function.
- fixtures.plugin: mosquitto brokers (plain, password, TLS), the fault proxy, and the harness
  control server that MicroPython tests steer.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["pytest_mp", "fixtures.plugin"]
