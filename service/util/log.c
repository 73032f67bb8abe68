/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool prefix = true;

void log_setup(void) {
        prefix = !isatty(STDERR_FILENO) || getenv("JOURNAL_STREAM");
        const char *e = getenv("CLUSTERHUB_LOG_LEVEL");
        if (e && streq(e, "debug"))
                max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        if (level <= max_level) {
                if (prefix)
                        fprintf(stderr, "<%d>", level);
                errno = error < 0 ? -error : error;
                va_start(ap, fmt);
                vfprintf(stderr, fmt, ap);
                va_end(ap);
                fputc('\n', stderr);
        }
        errno = saved;
        return error < 0 ? error : -error;
}
