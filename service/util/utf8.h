/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Whether STR[0..LEN) is valid UTF-8: shortest forms only, no surrogates, at most U+10FFFF. */
bool utf8_valid(const char *str, size_t len);
