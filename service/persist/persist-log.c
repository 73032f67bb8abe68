/* SPDX-License-Identifier: MIT */

/* The log codec and file walk (see log.h). */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist-log.h"
#include "macro.h"

static uint32_t crc_table[256];

static void crc_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;

                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t log_crc32(uint32_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

        if (crc_table[1] == 0)
                crc_init();
        crc = ~crc;
        while (len--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static void logbuf_room(LogBuf *b, size_t n) {
        size_t cap;
        uint8_t *d;

        if (b->oom)
                return;
        if (b->len + n <= b->cap)
                return;
        if (b->len + n > (size_t) LOG_RECORD_MAX + LOG_RECORD_HEADER + 64) {
                b->oom = true;
                return;
        }
        cap = MAX(b->cap * 2, b->len + n);
        cap = MAX(cap, (size_t) 256);
        d = realloc(b->data, cap);
        if (!d) {
                b->oom = true;
                return;
        }
        b->data = d;
        b->cap = cap;
}

void logbuf_reset(LogBuf *b) {
        b->len = 0;
        b->oom = false;
        logbuf_room(b, LOG_RECORD_HEADER);
        if (!b->oom)
                b->len = LOG_RECORD_HEADER;
}

void logbuf_free(LogBuf *b) {
        free(b->data);
        *b = (LogBuf) {};
}

static void put(LogBuf *b, const void *p, size_t n) {
        logbuf_room(b, n);
        if (b->oom)
                return;
        if (n > 0)
                memcpy(b->data + b->len, p, n);
        b->len += n;
}

void logbuf_u8(LogBuf *b, uint8_t v) {
        put(b, &v, 1);
}

void logbuf_u32(LogBuf *b, uint32_t v) {
        v = htole32(v);
        put(b, &v, 4);
}

void logbuf_u64(LogBuf *b, uint64_t v) {
        v = htole64(v);
        put(b, &v, 8);
}

void logbuf_str(LogBuf *b, const char *s, size_t len) {
        if (len > LOG_RECORD_MAX) {
                b->oom = true;
                return;
        }
        logbuf_u32(b, (uint32_t) len);
        put(b, s, len);
        logbuf_u8(b, 0);
}

void logbuf_value(LogBuf *b, const StoreValue *v) {
        uint64_t bits;

        logbuf_u8(b, (uint8_t) v->type);
        switch (v->type) {
        case 's':
        case 'o':
        case 'g':
                logbuf_str(b, v->str.ptr, v->str.len);
                break;
        case 'v':
                logbuf_str(b, v->blob.sig, strlen(v->blob.sig));
                if (v->blob.len > LOG_RECORD_MAX) {
                        b->oom = true;
                        break;
                }
                logbuf_u32(b, (uint32_t) v->blob.len);
                put(b, v->blob.data, v->blob.len);
                break;
        case 'd':
                memcpy(&bits, &v->d, 8);
                logbuf_u64(b, bits);
                break;
        default:
                logbuf_u64(b, v->u);
        }
}

int logbuf_finish(LogBuf *b) {
        uint32_t len, crc;

        if (b->oom)
                return b->len > LOG_RECORD_MAX ? -E2BIG : -ENOMEM;
        if (b->len - LOG_RECORD_HEADER > LOG_RECORD_MAX)
                return -E2BIG;
        len = htole32((uint32_t) (b->len - LOG_RECORD_HEADER));
        crc = htole32(log_crc32(0, b->data + LOG_RECORD_HEADER, b->len - LOG_RECORD_HEADER));
        memcpy(b->data, &len, 4);
        memcpy(b->data + 4, &crc, 4);
        return 0;
}

static int item_put(void *userdata, const char *name, const StoreValue *value) {
        LogBuf *b = userdata;

        if (name)
                logbuf_str(b, name, strlen(name));
        if (value)
                logbuf_value(b, value);
        return b->oom ? -ENOMEM : 0;
}

int logbuf_entry(LogBuf *b, Store *s, const char *ns, const StoreEntry *e, int64_t deadline_wall_ms) {
        int r;

        logbuf_reset(b);
        logbuf_u8(b, LOG_SET);
        logbuf_str(b, ns, strlen(ns));
        logbuf_str(b, e->key, strlen(e->key));
        logbuf_u64(b, (uint64_t) deadline_wall_ms);
        if (e->kind == STORE_KIND_HASH || e->kind == STORE_KIND_LIST || e->kind == STORE_KIND_SET) {
                logbuf_u8(b, (uint8_t) e->kind);
                logbuf_u32(b, (uint32_t) e->n_items);
                r = store_entry_foreach_item(s, e, item_put, b);
                if (r < 0 && !b->oom)
                        return r;
        } else
                logbuf_value(b, &e->value);
        return logbuf_finish(b);
}

static const uint8_t delta_codes[] = {
        [STORE_DELTA_PUSH] = LOG_DELTA_PUSH,
        [STORE_DELTA_POP] = LOG_DELTA_POP,
        [STORE_DELTA_HSET] = LOG_DELTA_HSET,
        [STORE_DELTA_HDEL] = LOG_DELTA_HDEL,
        [STORE_DELTA_SADD] = LOG_DELTA_SADD,
        [STORE_DELTA_SREM] = LOG_DELTA_SREM,
};

char log_delta_kind(uint8_t op) {
        switch (op) {
        case LOG_DELTA_PUSH:
        case LOG_DELTA_POP:
                return STORE_KIND_LIST;
        case LOG_DELTA_HSET:
        case LOG_DELTA_HDEL:
                return STORE_KIND_HASH;
        case LOG_DELTA_SADD:
        case LOG_DELTA_SREM:
                return STORE_KIND_SET;
        default:
                return 0;
        }
}

int logbuf_delta(LogBuf *b, const char *ns, const char *key, int64_t deadline_wall_ms, const StoreDelta *d) {
        uint8_t op;

        if ((size_t) d->op >= sizeof(delta_codes) || d->n > UINT32_MAX)
                return -EINVAL;
        op = delta_codes[d->op];
        logbuf_reset(b);
        logbuf_u8(b, LOG_DELTA);
        logbuf_str(b, ns, strlen(ns));
        logbuf_str(b, key, strlen(key));
        logbuf_u64(b, (uint64_t) deadline_wall_ms);
        logbuf_u8(b, op);
        logbuf_u8(b, d->left);
        logbuf_u32(b, (uint32_t) d->n);
        for (size_t i = 0; i < d->n && !b->oom; i++) {
                if (op != LOG_DELTA_PUSH && op != LOG_DELTA_POP)
                        logbuf_str(b, d->names[i], strlen(d->names[i]));
                if (op == LOG_DELTA_PUSH || op == LOG_DELTA_HSET)
                        logbuf_value(b, &d->values[i]);
        }
        return logbuf_finish(b);
}

int logrd_u8(LogReader *r, uint8_t *ret) {
        if (r->end - r->p < 1)
                return -EBADMSG;
        *ret = *r->p++;
        return 0;
}

int logrd_u32(LogReader *r, uint32_t *ret) {
        uint32_t v;

        if (r->end - r->p < 4)
                return -EBADMSG;
        memcpy(&v, r->p, 4);
        r->p += 4;
        *ret = le32toh(v);
        return 0;
}

int logrd_u64(LogReader *r, uint64_t *ret) {
        uint64_t v;

        if (r->end - r->p < 8)
                return -EBADMSG;
        memcpy(&v, r->p, 8);
        r->p += 8;
        *ret = le64toh(v);
        return 0;
}

int logrd_str(LogReader *r, const char **ret, size_t *ret_len) {
        uint32_t len;
        int k;

        k = logrd_u32(r, &len);
        if (k < 0)
                return k;
        if ((size_t) (r->end - r->p) < (size_t) len + 1 || r->p[len] != 0 || memchr(r->p, 0, len))
                return -EBADMSG;
        *ret = (const char *) r->p;
        if (ret_len)
                *ret_len = len;
        r->p += len + 1;
        return 0;
}

int logrd_value(LogReader *r, StoreValue *ret) {
        StoreValue v = {};
        uint8_t t;
        uint32_t len;
        uint64_t u = 0;
        int k;

        k = logrd_u8(r, &t);
        if (k < 0)
                return k;
        v.type = (char) t;
        switch (t) {
        case 's':
        case 'o':
        case 'g':
                k = logrd_str(r, &v.str.ptr, &v.str.len);
                break;
        case 'v':
                k = logrd_str(r, &v.blob.sig, NULL);
                if (k >= 0)
                        k = logrd_u32(r, &len);
                if (k >= 0 && (size_t) (r->end - r->p) < len)
                        k = -EBADMSG;
                if (k >= 0) {
                        v.blob.data = r->p;
                        v.blob.len = len;
                        r->p += len;
                }
                break;
        case 'd':
                k = logrd_u64(r, &u);
                memcpy(&v.d, &u, 8);
                break;
        case 'y': case 'n': case 'i': case 'x': case 'q': case 'u': case 't': case 'b':
                k = logrd_u64(r, &v.u);
                break;
        default:
                k = -EBADMSG;
        }
        if (k < 0)
                return k;
        *ret = v;
        return 0;
}

int log_file_write_header(int fd) {
        uint8_t h[LOG_HEADER_SIZE] = {};
        uint32_t v = htole32(LOG_VERSION);

        memcpy(h, LOG_MAGIC, 8);
        memcpy(h + 8, &v, 4);
        return log_write_all(fd, h, sizeof(h));
}

int log_file_upgrade_header(const char *path) {
        uint32_t v = htole32(LOG_VERSION);
        int fd, r = 0;

        fd = open(path, O_WRONLY | O_CLOEXEC); /* not O_APPEND: pwrite() would append */
        if (fd < 0)
                return -errno;
        if (pwrite(fd, &v, sizeof(v), 8) != (ssize_t) sizeof(v) || fdatasync(fd) < 0)
                r = errno > 0 ? -errno : -EIO;
        close(fd);
        return r;
}

int log_write_all(int fd, const void *data, size_t len) {
        const uint8_t *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Is everything from p to end zero?  (A file system may leave zeroes after a crash.) */
static bool all_zero(const uint8_t *p, const uint8_t *end) {
        for (; p < end; p++)
                if (*p)
                        return false;
        return true;
}

int log_file_scan(const char *path, LogRecordFn fn, void (*progress)(void *userdata, uint64_t off, uint64_t size),
                  void *userdata, LogScan *ret) {
        LogScan sc = {};
        struct stat st;
        uint8_t *map = NULL;
        uint64_t off, next_progress = 0;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        sc.size = (uint64_t) st.st_size;
        if (sc.size > 0) {
                map = mmap(NULL, sc.size, PROT_READ, MAP_PRIVATE, fd, 0);
                if (map == MAP_FAILED) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                (void) madvise(map, sc.size, MADV_SEQUENTIAL);
        }
        close(fd);

        if (sc.size < LOG_HEADER_SIZE) {
                /* a crash while creating it: nothing was ever acknowledged from it */
                sc.damage = sc.size == 0 ? LOG_INTACT : LOG_TORN_TAIL;
                sc.reason = "the header is cut short";
                goto done;
        }
        if (memcmp(map, LOG_MAGIC, 8) != 0) {
                sc.damage = LOG_CORRUPT;
                sc.reason = "not a clusterhub log (bad magic)";
                goto done;
        }
        uint32_t version;

        memcpy(&version, map + 8, 4);
        if (le32toh(version) < LOG_VERSION_MIN || le32toh(version) > LOG_VERSION) {
                sc.damage = LOG_CORRUPT;
                sc.reason = "unknown log version";
                goto done;
        }
        off = LOG_HEADER_SIZE;
        sc.good_end = off;
        while (off < sc.size) {
                uint64_t left = sc.size - off;
                uint32_t len, crc;

                if (progress && off >= next_progress) {
                        progress(userdata, off, sc.size);
                        next_progress = off + (64u << 20);
                }
                if (left < LOG_RECORD_HEADER) {
                        sc.damage = LOG_TORN_TAIL;
                        sc.reason = "a record header is cut short";
                        break;
                }
                memcpy(&len, map + off, 4);
                memcpy(&crc, map + off + 4, 4);
                len = le32toh(len);
                crc = le32toh(crc);
                if (len == 0 || len > LOG_RECORD_MAX) {
                        if (all_zero(map + off, map + sc.size)) {
                                sc.damage = LOG_TORN_TAIL;
                                sc.reason = "zeroes after the last record";
                        } else {
                                sc.damage = LOG_CORRUPT;
                                sc.reason = "impossible record length";
                        }
                        break;
                }
                if (left - LOG_RECORD_HEADER < len) {
                        sc.damage = LOG_TORN_TAIL;
                        sc.reason = "the last record is cut short";
                        break;
                }
                if (log_crc32(0, map + off + LOG_RECORD_HEADER, len) != crc) {
                        bool last = off + LOG_RECORD_HEADER + len == sc.size;

                        sc.damage = last ? LOG_TORN_TAIL : LOG_CORRUPT;
                        sc.reason = last ? "the last record's checksum fails" : "checksum mismatch";
                        break;
                }
                if (fn) {
                        r = fn(userdata, map + off + LOG_RECORD_HEADER, len, off);
                        if (r == -EBADMSG) {
                                sc.damage = LOG_CORRUPT;
                                sc.reason = "a record with a good checksum does not decode";
                                r = 0;
                                break;
                        }
                        if (r < 0)
                                break;
                }
                sc.n_records++;
                off += LOG_RECORD_HEADER + len;
                sc.good_end = off;
        }
done:
        if (map)
                munmap(map, sc.size);
        if (r < 0)
                return r;
        *ret = sc;
        return 0;
}
