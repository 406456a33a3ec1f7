// The device twin: the Unix port configured like the ESP32 port, so that heap figures and float
// behaviour measured here hold on the device. What matters for our code:
// - 32-bit objects and pointers (built with CC="gcc -m32"; see tools/twin/README.md);
// - object representation A, as the ESP32 port uses;
// - single-precision floats: 16777217.0 == 16777216.0, and an epoch in seconds is not exact;
// - arbitrary-precision (mpz) long ints;
// - the "extra features" ROM level, as the ESP32 port uses.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_OBJ_REPR (MICROPY_OBJ_REPR_A)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)

// The Unix port's own features (os, time, select, socket, ...) on top.
#include "ports/unix/variants/mpconfigvariant_common.h"
