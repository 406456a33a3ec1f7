# The twin's frozen modules plus lib/, frozen the way a user freezes it into an ESP32 build
# (the repository's manifest.py).
include("../manifest.py")
include("../../../manifest.py")
