/* SPDX-License-Identifier: MIT */
#include "limits.h"

void limits_init_default(Limits *l) {
#define X(field, option, def, help) l->field = (def);
        LIMITS_TABLE(X)
#undef X
}
