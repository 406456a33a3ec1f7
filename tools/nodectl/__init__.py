"""nodectl: the host command for our ESP32 MQTT sensor nodes (CPython 3.11+, any OS).

One subcommand per job, one module per subcommand: flash MicroPython with esptool (flash),
compile the device tree with mpy-cross (build), copy only what changed with mpremote (deploy),
LittleFS images for a fleet (provision), check a config with the device's own validator
(configcheck), watch a node's topics (monitor), follow its console (console), the mip
package.json (package), a mosquitto configuration for the nodes (broker). Shared helpers live
in nodectl.common. Needs only the user requirements (requirements-user.txt).

    python tools/nodectl deploy --port /dev/ttyUSB0 --config config.json --secrets secrets.json
    cd tools && python -m nodectl monitor --broker pi.lan --base Erdgeschoss/Wohnzimmer

Exit codes: 0 success; 1 refused or check failed (bad config, wrong chip, wrong size, node
offline or silent, no port given); 2 bad command line; 3 a tool, the device or the broker failed.
"""
