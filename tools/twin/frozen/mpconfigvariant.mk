# The device twin with lib/ frozen in (see ../mpconfigvariant.mk and the repository's manifest.py).
include $(VARIANT_DIR)/../mpconfigvariant.mk
