# The device twin (see mpconfigvariant.h). The source tree it is built from has no mbedTLS,
# Berkeley DB or libffi, and the ESP32 has no ffi or btree in our firmware either.
MICROPY_PY_SSL = 0
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_TERMIOS = 1

FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py
