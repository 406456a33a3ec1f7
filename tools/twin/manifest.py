# Frozen into the twin: the simulated board, as its C counterparts (machine, network, esp32,
# dht, onewire, ntptime) are built into an ESP32 firmware, so their bytecode does not take the
# node's heap; and asyncio, as the ESP32 port freezes it. Relative paths are from this file.
include("$(MPY_DIR)/extmod/asyncio")
freeze("../sim/board")
