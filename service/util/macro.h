/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers in the style of systemd's macro.h, kept free of sd-bus and GLib
 * so that every logic module (store, locks, workers, ...) can use them. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Free *p and set it to NULL; for _cleanup_(freep). */
static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)        \
        static inline void func##p(type *p) {          \
                if (*p)                                \
                        func(*p);                      \
        }

/* Take ownership of a pointer out of a _cleanup_ variable. */
#define TAKE_PTR(p)                            \
        ({                                     \
                __typeof__(p) _ptr_ = (p);     \
                (p) = NULL;                    \
                _ptr_;                         \
        })

#define TAKE_FD(fd)                            \
        ({                                     \
                int _fd_ = (fd);               \
                (fd) = -1;                     \
                _fd_;                          \
        })

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)

static inline const char *strempty(const char *s) {
        return s ? s : "";
}
