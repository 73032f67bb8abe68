/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The store: one namespace's redis-like database (org.clusterhub.Store1), as plain C.
 * No D-Bus code here: the bus glue unpacks arguments, calls these functions and packs
 * the replies.  Full reference: docs/store.md.
 *
 * Conventions
 *   - Every function returns a negative errno on failure and >= 0 on success.  Functions
 *     whose D-Bus reply is a boolean return it as 1/0; every other result comes back
 *     through ret_* out parameters, which are never touched on failure.  Out parameters may
 *     be NULL when the caller does not need them.
 *   - Keys, hash field names and set members are NUL-terminated UTF-8 strings.  Keys must
 *     be non-empty valid UTF-8 (-EINVAL) of at most limits.max_key_len bytes (-ENOBUFS,
 *     limit "key-length").  Field names and members: at most max_key_len bytes too.
 *   - Every function that can observe expiry takes now_ms, a monotonic clock in ms that the
 *     caller supplies.  A key is never visible at or after its deadline.
 *   - One call is atomic: when a call fails, the store is unchanged (lazy expiry of keys
 *     whose deadline passed may still have happened, and was notified as "expired").
 *   - Borrowed results ("views") stay valid until the next call that modifies the store
 *     (any write, store_expire_due(), store_waiter_cancel(), or a read that lazily expires
 *     a key: reads return views that stay valid for the remainder of that same call's
 *     result, but do not hold views across calls).  Arrays holding views are allocated for
 *     the caller: free the array itself with free(), never its contents.
 *   - Owned results (pops, GetDel, LMove, BLPop grants) are freed with store_value_clear()
 *     / store_values_free() / store_strv_free().
 *
 * Error table (the glue maps these to org.clusterhub.Error.*):
 *   -EINVAL       InvalidArgs     empty key / not UTF-8, bad StoreValue, nx together with
 *                                 xx, ttl together with keep_ttl, deadline overflow, list
 *                                 index out of range (LSet), bad UTF-8 from a byte range
 *   -ENOKEY       NoSuchKey       key (or field, or index) absent where one is needed
 *   -EMEDIUMTYPE  WrongType       the key holds another kind of value
 *   -EDOM         NotANumber      the value is not a number the command can work on
 *   -ERANGE       Overflow        result does not fit the stored type, or is NaN/infinite
 *   -ENOBUFS      LimitExceeded   a limit would be exceeded; store_last_limit() names it
 *   -ENOMEM       (out of memory; the store is unchanged)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- values ---------------------------------------------------------------------- */

/* What a D-Bus variant held.  type is the D-Bus type code of the variant's contents:
 *   's' 'o' 'g'                   str (ptr, len): text, need not be NUL-terminated on input;
 *                                 every string the store hands out IS NUL-terminated
 *   'y' 'n' 'i' 'x'               i  (the value, range of that D-Bus type)
 *   'q' 'u' 't'                   u
 *   'b'                           i  (0 or 1)
 *   'd'                           d
 *   'v'                           blob: every other type (containers, arrays, dicts,
 *                                 nested variants).  sig = the variant's contents
 *                                 signature (NUL-terminated), data/len = opaque bytes the
 *                                 glue serialized.  Copied and compared by sig + bytes.
 *   '\0'                          "absent", only in results (MGet, HMGet) */
typedef struct StoreValue {
        char type;
        union {
                int64_t i;
                uint64_t u;
                double d;
                struct {
                        const char *ptr;
                        size_t len;
                } str;
                struct {
                        const char *sig;
                        const void *data;
                        size_t len;
                } blob;
        };
} StoreValue;

/* Free what an OWNED value holds and reset it to absent (type '\0').  NULL-safe. */
void store_value_clear(StoreValue *v);
/* Clear n owned values and free the array.  NULL-safe. */
void store_values_free(StoreValue *v, size_t n);
/* Free an array of n owned strings.  NULL-safe. */
void store_strv_free(char **v, size_t n);
/* Deep copy (the result is owned).  -EINVAL for an invalid value, -ENOMEM. */
int store_value_copy(StoreValue *ret, const StoreValue *src);
/* Same D-Bus type and same contents (doubles compare bitwise). */
bool store_value_equal(const StoreValue *a, const StoreValue *b);

/* ---- limits and accounting ------------------------------------------------------- */

typedef struct StoreLimits {
        size_t max_key_len;       /* bytes per key, field name or set member   (512) */
        size_t max_value_size;    /* bytes per string or blob value           (1 MiB) */
        size_t max_elements;      /* fields/elements/members per collection   (1,000,000) */
        uint64_t max_memory;      /* accounted bytes per namespace            (256 MiB) */
} StoreLimits;

#define STORE_DEFAULT_MAX_KEY_LEN    ((size_t) 512)
#define STORE_DEFAULT_MAX_VALUE_SIZE ((size_t) 1024 * 1024)
#define STORE_DEFAULT_MAX_ELEMENTS   ((size_t) 1000000)
#define STORE_DEFAULT_MAX_MEMORY     ((uint64_t) 256 * 1024 * 1024)
#define STORE_DEFAULT_HUB_MEMORY     ((uint64_t) 1024 * 1024 * 1024)

/* Fill in the defaults above. */
void store_limits_default(StoreLimits *ret);

/* Hub-wide memory counter shared by every Store; owned by the caller, must outlive the
 * stores.  used is maintained by the stores; limit is checked like max_memory (limit name
 * "hub-memory"). */
typedef struct StoreAccount {
        uint64_t used;
        uint64_t limit;
} StoreAccount;

/* ---- the store --------------------------------------------------------------------- */

typedef struct Store Store;
typedef struct StoreWaiter StoreWaiter;

/* Called once per change of a key, synchronously, during the write; event is one of the
 * Redis keyspace event names listed in docs/store.md.  key is "" for "flush".  Must not
 * call back into the store. */
typedef void (*StoreNotify)(void *userdata, const char *key, const char *event);

/* Called when a blocked waiter is served (see store_block()).  value is OWNED by the
 * callee; key is valid during the call only.  The waiter is already freed: do not cancel
 * it.  Called when the store is consistent (after the push that caused it); it may call
 * store functions. */
typedef void (*StoreServed)(void *userdata, void *token, const char *key, StoreValue *value);

/* limits NULL: defaults.  hub_account may be NULL (no hub-wide limit).  notify and served
 * may be NULL. */
int store_new(Store **ret, const StoreLimits *limits, StoreAccount *hub_account,
              StoreNotify notify, StoreServed served, void *userdata);
/* Frees every key and every pending waiter (without calling served).  NULL-safe. */
Store *store_free(Store *s);

/* Name of the limit behind the last -ENOBUFS: "key-length", "value-size", "elements",
 * "memory" (namespace), "hub-memory" or "reply-items" (a Keys walk); NULL if none yet.
 * Static string. */
const char *store_last_limit(const Store *s);
/* For "value-size": the bytes the refused value would have had (for Append and SetRange,
 * the resulting string); 0 for the other limits. */
uint64_t store_last_limit_wanted(const Store *s);
/* Bytes of a value that count against max_value_size: a string's length, a blob's
 * signature plus data; 0 for numbers. */
size_t store_value_bytes(const StoreValue *v);
/* Accounted bytes used by this store (keys, values, tables, expiry heap). */
uint64_t store_memory(const Store *s);
/* Seed the store's random generator (RandomKey, SPop, SRandMember); for tests. */
void store_set_seed(Store *s, uint64_t seed);

/* ---- expiry (expire.c) --------------------------------------------------------------- */

/* Earliest deadline (monotonic ms) of any key, UINT64_MAX when no key has a TTL.  The glue
 * arms its single timer for it. */
uint64_t store_next_deadline(const Store *s);
/* Delete keys whose deadline is <= now_ms (at most max of them; 0 = all), notifying
 * "expired" for each.  Returns the number deleted. */
size_t store_expire_due(Store *s, uint64_t now_ms, size_t max);

/* ---- keys (keyspace.c) --------------------------------------------------------------- */

/* Delete keys; *ret_count = how many existed.  Notifies "del" per deleted key. */
int store_del(Store *s, const char *const *keys, size_t n, uint64_t now_ms, size_t *ret_count);
/* How many of keys exist (duplicates count twice). */
int store_exists(Store *s, const char *const *keys, size_t n, uint64_t now_ms, size_t *ret_count);
/* Keys matching the glob (Redis glob: * ? [abc] [^a] [a-z] \x), in one go.  Views.  Its
 * time grows with the store: a caller with a loop to keep responsive uses the walk below. */
int store_keys(Store *s, const char *glob, uint64_t now_ms, const char ***ret_keys, size_t *ret_n);

/* Work units: visiting a bucket costs one, a key four (it is a cache miss), a glob match
 * the pattern bytes it examines, a key handed to a Keys walk's caller four more.  One Scan
 * call, and one step of a Keys walk, does about this much: some 3,000 keys, 1-2 ms of CPU
 * (tests/store-bus/bench-keys-stall.c measures what other clients see). */
#define STORE_SLICE_WORK ((size_t) 1 << 15)

/* Keys in slices.  store_keys_begin(), then store_keys_step() until it returns 1; each
 * match is handed to `found` as it is met (a view, valid during the call; a negative
 * return stops the walk with that error).  Each step does about `work` units (at least one
 * bucket).  A key present during the whole walk is found exactly once: while a walk runs
 * the key table does not shrink, so the reverse-binary cursor never visits a bucket twice.
 * Keys added or deleted meanwhile may or may not be found.  Flush, or freeing the store,
 * ends the walk (the next step returns 1).  More than max_keys matches (0: no bound): the
 * step fails with -ENOBUFS, limit "reply-items".  An ended or failed walk only waits for
 * store_keys_free(). */
typedef struct StoreKeys StoreKeys;
typedef int (*StoreKeyFound)(void *userdata, const char *key, size_t len);
int store_keys_begin(Store *s, const char *glob, size_t max_keys, StoreKeys **ret);
/* 1 done, 0 more to do, or -errno (-ENOMEM, -ENOBUFS, or found's). */
int store_keys_step(StoreKeys *k, uint64_t now_ms, size_t work, StoreKeyFound found, void *userdata);
/* NULL-safe. */
StoreKeys *store_keys_free(StoreKeys *k);

/* One step of an incremental scan.  Start with cursor 0; done when *ret_cursor is 0.
 * count is a hint (0: 10).  glob NULL or "" matches everything.  Every key present for the
 * whole scan is returned at least once (reverse-binary cursor, survives resizes).  Like
 * Redis, a call visits at most 10 * count buckets; beyond Redis, at most about
 * STORE_SLICE_WORK units of work, so that a costly glob returns early too.  Views. */
int store_scan(Store *s, uint64_t cursor, const char *glob, size_t count, uint64_t now_ms,
               uint64_t *ret_cursor, const char ***ret_keys, size_t *ret_n);
/* "string" (s o g), "int" (y n q i u x t), "double", "bool", "value" (other variants),
 * "hash", "list", "set", or "none".  Static string. */
int store_type(Store *s, const char *key, uint64_t now_ms, const char **ret_type);
/* Rename src to dst, replacing dst; the TTL moves.  -ENOKEY when src is absent.  Notifies
 * "rename_from" (src) and "rename_to" (dst).  src == dst: no change. */
int store_rename(Store *s, const char *src, const char *dst, uint64_t now_ms);
/* Like store_rename() but only when dst is absent: returns 1 renamed, 0 dst exists. */
int store_renamenx(Store *s, const char *src, const char *dst, uint64_t now_ms);
/* Move key, with its TTL, to the store dst (another namespace; Redis MOVE): 1 moved, 0 when
 * key is absent here or present in dst.  Checked against dst's memory limit (-ENOBUFS,
 * named on s: "memory" or "hub-memory" of dst).  dst == s: -EINVAL.  Notifies "move_from"
 * on s and "move_to" on dst; a list moved onto dst's waiters serves them.  O(size of the
 * value) for the accounting, no copy. */
int store_move(Store *s, const char *key, Store *dst, uint64_t now_ms);
/* TTL of ttl_ms from now: 1 set, 0 no such key.  ttl_ms 0 deletes the key (notifies
 * "del"), otherwise notifies "expire". */
int store_expire(Store *s, const char *key, uint64_t ttl_ms, uint64_t now_ms);
/* Remove the TTL: 1 when there was one ("persist"), 0 otherwise. */
int store_persist(Store *s, const char *key, uint64_t now_ms);
/* Remaining ms; -1 no TTL, -2 no key. */
int store_ttl(Store *s, const char *key, uint64_t now_ms, int64_t *ret_ttl_ms);
/* Delete every key; notifies "flush" once with key "" (nothing when already empty).
 * Pending waiters stay. */
int store_flush(Store *s);
/* Number of keys (including expired ones not yet collected, as Redis's DBSIZE). */
uint64_t store_dbsize(const Store *s);
/* A random live key (view).  -ENOKEY when empty. */
int store_randomkey(Store *s, uint64_t now_ms, const char **ret_key);

/* ---- plain values (t_string.c) -------------------------------------------------------- */

#define STORE_SET_NX       (1u << 0)     /* only if absent */
#define STORE_SET_XX       (1u << 1)     /* only if present */
#define STORE_SET_KEEP_TTL (1u << 2)     /* keep an existing TTL */

/* The value at key (view).  -ENOKEY, -EMEDIUMTYPE for hash/list/set. */
int store_get(Store *s, const char *key, uint64_t now_ms, StoreValue *ret);
/* Store value.  ttl_ms 0 = no TTL (an existing TTL is cleared unless KEEP_TTL).  Returns 1
 * set, 0 when nx/xx prevented it.  Replaces a key of any type.  Notifies "set", then
 * "expire" when ttl_ms > 0. */
int store_set(Store *s, const char *key, const StoreValue *value, uint64_t ttl_ms,
              unsigned flags, uint64_t now_ms);
/* store_set() that also hands back the previous value (Redis SET ... GET), atomically:
 * *ret_old is an OWNED copy, type '\0' when the key was absent.  Returns 1 set, 0 when nx/xx
 * prevented it (the old value is handed back either way).  -EMEDIUMTYPE, and nothing set,
 * when the key holds a hash, list or set.  Notifies as store_set(). */
int store_setget(Store *s, const char *key, const StoreValue *value, uint64_t ttl_ms,
                 unsigned flags, uint64_t now_ms, StoreValue *ret_old);
/* Get and delete (owned).  -ENOKEY, -EMEDIUMTYPE.  Notifies "del". */
int store_getdel(Store *s, const char *key, uint64_t now_ms, StoreValue *ret);
/* Views, one per key; type '\0' when absent or not a plain value.  Array: free(). */
int store_mget(Store *s, const char *const *keys, size_t n, uint64_t now_ms, StoreValue **ret_values);
/* Set n keys (clearing TTLs), all or nothing.  Later duplicates win.  "set" per key. */
int store_mset(Store *s, const char *const *keys, const StoreValue *values, size_t n, uint64_t now_ms);
/* store_mset() only when none of keys exists: 1 set, 0 not. */
int store_msetnx(Store *s, const char *const *keys, const StoreValue *values, size_t n, uint64_t now_ms);
/* Add by.  Integer types keep their type (-ERANGE past its range; for 't' also when the
 * result exceeds INT64_MAX, as the reply is int64); 's' holding a strict Redis integer
 * stays a string; absent key starts at 0 as 'x'; 'd', 'b', non-numeric text: -EDOM;
 * other types / hash / list / set: -EMEDIUMTYPE.  Keeps the TTL.  Notifies "incrby". */
int store_incr(Store *s, const char *key, int64_t by, uint64_t now_ms, int64_t *ret);
/* Add by.  'd' stays 'd'; 's' holding a number stays a string formatted like Redis
 * INCRBYFLOAT; integer types keep their type when the result is integral and fits
 * (-EDOM when not integral, -ERANGE when out of range); absent key starts at 0 as 'd';
 * NaN/infinite result: -ERANGE.  Keeps the TTL.  Notifies "incrbyfloat". */
int store_incrfloat(Store *s, const char *key, double by, uint64_t now_ms, double *ret);
/* Append to an 's' value (created when absent); new length in bytes.  Other value
 * types: -EMEDIUMTYPE.  Keeps the TTL.  Notifies "append". */
int store_append(Store *s, const char *key, const char *str, size_t len, uint64_t now_ms, size_t *ret_len);
/* Byte length of a string value ('s' 'o' 'g'); 0 when absent; others -EMEDIUMTYPE. */
int store_strlen(Store *s, const char *key, uint64_t now_ms, size_t *ret_len);
/* Bytes start..end inclusive, negative from the end (owned, NUL-terminated, free()).
 * "" when absent or empty range.  -EINVAL when the range cuts a UTF-8 character. */
int store_getrange(Store *s, const char *key, int64_t start, int64_t end, uint64_t now_ms,
                   char **ret, size_t *ret_len);
/* Overwrite from byte offset (padding with spaces past the end, D-Bus strings cannot
 * hold NUL); new length.  Absent key + empty str: 0, nothing created.  -EINVAL when the
 * result would not be valid UTF-8.  Keeps the TTL.  Notifies "setrange". */
int store_setrange(Store *s, const char *key, uint64_t offset, const char *str, size_t len,
                   uint64_t now_ms, size_t *ret_len);

/* ---- hashes (t_hash.c) --------------------------------------------------------------- */

typedef struct StoreField {
        const char *name;
        StoreValue value;
} StoreField;

/* Set n fields (created when absent); *ret_added = new fields.  Later duplicates win.
 * Notifies "hset" once. */
int store_hset(Store *s, const char *key, const char *const *fields, const StoreValue *values,
               size_t n, uint64_t now_ms, size_t *ret_added);
/* 1 set, 0 field exists.  Notifies "hset" when set. */
int store_hsetnx(Store *s, const char *key, const char *field, const StoreValue *value, uint64_t now_ms);
/* View.  -ENOKEY when key or field absent. */
int store_hget(Store *s, const char *key, const char *field, uint64_t now_ms, StoreValue *ret);
/* Views, type '\0' for absent fields.  Array: free(). */
int store_hmget(Store *s, const char *key, const char *const *fields, size_t n, uint64_t now_ms,
                StoreValue **ret_values);
/* Every field (views; array: free()); empty when absent.  HGetAll, HKeys and HVals give a
 * hash of up to HASH_SMALL_MAX (128) fields in insertion order (an update keeps a field's
 * place); a hash that grew past that has the order of its table from then on. */
int store_hgetall(Store *s, const char *key, uint64_t now_ms, StoreField **ret_fields, size_t *ret_n);
/* Delete fields; count removed.  Notifies "hdel" (and "del" when the hash is emptied). */
int store_hdel(Store *s, const char *key, const char *const *fields, size_t n, uint64_t now_ms,
               size_t *ret_count);
/* 1 / 0. */
int store_hexists(Store *s, const char *key, const char *field, uint64_t now_ms);
int store_hlen(Store *s, const char *key, uint64_t now_ms, size_t *ret_n);
int store_hkeys(Store *s, const char *key, uint64_t now_ms, const char ***ret_fields, size_t *ret_n);
int store_hvals(Store *s, const char *key, uint64_t now_ms, StoreValue **ret_values, size_t *ret_n);
/* store_incr() / store_incrfloat() on a field (absent field starts at 0). "hincrby" /
 * "hincrbyfloat". */
int store_hincr(Store *s, const char *key, const char *field, int64_t by, uint64_t now_ms, int64_t *ret);
int store_hincrfloat(Store *s, const char *key, const char *field, double by, uint64_t now_ms, double *ret);

/* ---- lists (t_list.c) ----------------------------------------------------------------- */

/* Push n values one after the other (LPush [1,2] gives [2,1]); new length.  Notifies
 * "lpush"/"rpush" once.  Wakes waiters. */
int store_push(Store *s, const char *key, bool left, const StoreValue *values, size_t n,
               uint64_t now_ms, size_t *ret_len);
/* Same, only when the list exists (*ret_len 0 otherwise). */
int store_pushx(Store *s, const char *key, bool left, const StoreValue *values, size_t n,
                uint64_t now_ms, size_t *ret_len);
/* Pop up to count (0 means 1) values (owned; store_values_free()); 0 values when absent.
 * Notifies "lpop"/"rpop" (and "del" when emptied). */
int store_pop(Store *s, const char *key, bool left, size_t count, uint64_t now_ms,
              StoreValue **ret_values, size_t *ret_n);
/* start..stop inclusive, negative from the end (views; array: free()). */
int store_lrange(Store *s, const char *key, int64_t start, int64_t stop, uint64_t now_ms,
                 StoreValue **ret_values, size_t *ret_n);
/* Length; 0 when absent. */
int store_llen(Store *s, const char *key, uint64_t now_ms, size_t *ret_len);
/* View; -ENOKEY when absent or out of range. */
int store_lindex(Store *s, const char *key, int64_t index, uint64_t now_ms, StoreValue *ret);
/* -ENOKEY absent, -EINVAL out of range.  Notifies "lset". */
int store_lset(Store *s, const char *key, int64_t index, const StoreValue *value, uint64_t now_ms);
/* Keep start..stop.  Notifies "ltrim" (and "del" when emptied). */
int store_ltrim(Store *s, const char *key, int64_t start, int64_t stop, uint64_t now_ms);
/* Remove values equal to value: count > 0 from the head, < 0 from the tail, 0 all.
 * Notifies "lrem" (and "del") when something was removed. */
int store_lrem(Store *s, const char *key, int64_t count, const StoreValue *value, uint64_t now_ms,
               size_t *ret_removed);
/* Insert before/after the first element equal to pivot: *ret = new length, -1 pivot
 * absent, 0 key absent.  Notifies "linsert".  Wakes waiters. */
int store_linsert(Store *s, const char *key, bool before, const StoreValue *pivot,
                  const StoreValue *value, uint64_t now_ms, int64_t *ret);
/* Pop from src (left/right) and push onto dst (left/right) atomically; *ret = the moved
 * value (OWNED copy).  -ENOKEY when src is absent or empty.  Notifies src "lpop"/"rpop"
 * (and "del"), dst "lpush"/"rpush".  Wakes waiters. */
int store_lmove(Store *s, const char *src, const char *dst, bool from_left, bool to_left,
                uint64_t now_ms, StoreValue *ret);

/* ---- blocking pops (blocking.c) ------------------------------------------------------- */

/* BLPop (left) / BRPop.  Tries the keys in order: the first non-empty list is popped at
 * once: returns 1 with *ret_key (owned, free()) and *ret_value (owned).  A key holding
 * another type: -EMEDIUMTYPE.  Otherwise registers a waiter (returns 0, *ret_waiter set):
 * when a later write makes one of its lists non-empty, waiters are served strictly in
 * order of arrival through the served callback (the pop notifies "lpop"/"rpop").  The
 * glue calls store_waiter_cancel() on timeout or when the caller goes away. */
int store_block(Store *s, const char *const *keys, size_t n, bool left, void *token,
                uint64_t now_ms, StoreWaiter **ret_waiter, char **ret_key, StoreValue *ret_value);
/* Remove a pending waiter (not one that was already served).  NULL-safe. */
void store_waiter_cancel(StoreWaiter *w);
/* Number of pending waiters. */
size_t store_waiters(const Store *s);

/* ---- sets of strings (t_set.c) ------------------------------------------------------ */

/* Notifies "sadd" when something was added. */
int store_sadd(Store *s, const char *key, const char *const *members, size_t n, uint64_t now_ms,
               size_t *ret_added);
/* Notifies "srem" (and "del" when emptied) when something was removed. */
int store_srem(Store *s, const char *key, const char *const *members, size_t n, uint64_t now_ms,
               size_t *ret_removed);
/* Views; array: free(). */
int store_smembers(Store *s, const char *key, uint64_t now_ms, const char ***ret_members, size_t *ret_n);
/* 1 / 0. */
int store_sismember(Store *s, const char *key, const char *member, uint64_t now_ms);
int store_scard(Store *s, const char *key, uint64_t now_ms, size_t *ret_n);
/* Remove up to count (0 means 1) random members (owned; store_strv_free()).  "spop". */
int store_spop(Store *s, const char *key, size_t count, uint64_t now_ms, char ***ret_members, size_t *ret_n);
/* Up to count (0 means 1) distinct random members (views; array: free()). */
int store_srandmember(Store *s, const char *key, size_t count, uint64_t now_ms,
                      const char ***ret_members, size_t *ret_n);

/* ---- persistence hooks (journal.c) ---------------------------------------------------- */

/* What a collection command changed, for the journal: enough to replay the change onto the
 * key's previous state (plain data, views valid during the journal call only).  The commands
 * that have one pass it only when the key existed before the change (a key the command
 * created gets NULL); every other change passes NULL, meaning "record the resulting state". */
typedef enum StoreDeltaOp {
        STORE_DELTA_PUSH,  /* list: values[n] pushed one by one on the left or right */
        STORE_DELTA_POP,   /* list: n elements popped from the left or right */
        STORE_DELTA_HSET,  /* hash: names[i] set to values[i], i = 0..n-1, in this order */
        STORE_DELTA_HDEL,  /* hash: the fields names[n] deleted (absent ones: nothing) */
        STORE_DELTA_SADD,  /* set: the members names[n] added (present ones: nothing) */
        STORE_DELTA_SREM,  /* set: the members names[n] removed (absent ones: nothing) */
} StoreDeltaOp;

typedef struct StoreDelta {
        StoreDeltaOp op;
        bool left;
        size_t n;
        const char *const *names;
        const StoreValue *values;
} StoreDelta;

/* The journal hook: StoreNotify's (key, event) plus the delta (NULL: none, see above). */
typedef void (*StoreJournal)(void *userdata, const char *key, const char *event, const StoreDelta *delta);

/* The one write hook: called once per change of a key, synchronously, right after the
 * change and before the notify callback, with the same (key, event) pairs.  "del" and
 * "expired" mean the key is gone (for "expired" it is deleted right after the call),
 * "flush" (key "") that every key is gone; for every other event the key's resulting state
 * is store_entry_lookup().  delta, when not NULL, says what the change was (StoreDelta).
 * A command that notifies several events hands each the delta of its own step, in order, so
 * replaying the deltas one by one gives the state the last one saw.  It may read the store
 * with store_entry_lookup() and store_entry_foreach_item(), nothing else.  NULL turns it
 * off. */
void store_set_journal(Store *s, StoreJournal journal, void *userdata);
/* Loading mode: while on, no write calls the journal or the notify callback. */
void store_set_loading(Store *s, bool loading);

#define STORE_KIND_HASH 'H'
#define STORE_KIND_LIST 'L'
#define STORE_KIND_SET  'S'

/* One key as stored.  kind: the D-Bus type code of a plain value (value is a view of it), or
 * STORE_KIND_HASH / _LIST / _SET (walk it with store_entry_foreach_item()).  deadline_ms:
 * monotonic ms as given to the writes, UINT64_MAX without a TTL.  Valid until the next
 * change of the store. */
typedef struct StoreEntry {
        const char *key;
        char kind;
        StoreValue value;
        size_t n_items;
        uint64_t deadline_ms;
        const void *internal;
} StoreEntry;

/* The key as stored, expired or not, without lazy expiry: -ENOKEY when absent. */
int store_entry_lookup(Store *s, const char *key, StoreEntry *ret);
/* Each item of a collection entry, in order for lists: hashes give (field, value), lists
 * (NULL, value), sets (member, NULL).  A negative return of fn stops with it. */
typedef int (*StoreItemFn)(void *userdata, const char *name, const StoreValue *value);
int store_entry_foreach_item(Store *s, const StoreEntry *e, StoreItemFn fn, void *userdata);
/* Every entry (expired ones included), in table order; a negative return of fn stops with
 * it.  fn must not change the store. */
typedef int (*StoreEntryFn)(void *userdata, const StoreEntry *e);
int store_foreach_entry(Store *s, StoreEntryFn fn, void *userdata);
