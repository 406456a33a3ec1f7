// The device twin with lib/ frozen in: the same configuration as ../mpconfigvariant.h.
#include "../mpconfigvariant.h"
