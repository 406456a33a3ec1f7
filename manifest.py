# The node's libraries, for freezing into a MicroPython firmware. Frozen bytecode runs from
# flash, so the code itself takes no heap. Include this file from your board's manifest next to
# the port's own one (README, "Freeze lib/ into your firmware"):
#
#   include("$(PORT_DIR)/boards/manifest.py")
#   include("/path/to/this/repository/manifest.py")
#
# Relative paths are from this file.
package("mqtt", base_path="lib")
package("sensors", base_path="lib")
package("node", base_path="lib")
