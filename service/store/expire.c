/* SPDX-License-Identifier: MIT */

/* Deadlines: a binary min-heap of (deadline, entry) for the keys that have a TTL; each
 * entry knows its slot (heap_idx), so setting, clearing and moving a TTL is O(log n).
 * Keys without a TTL cost nothing here.  The glue keeps one timer for
 * store_next_deadline() and calls store_expire_due(); reads expire lazily as well. */

#include "store-internal.h"

#define HEAP_MIN 16

static void heap_put(Store *s, size_t i, HeapItem item) {
        s->heap[i] = item;
        item.e->heap_idx = (uint32_t) i;
}

static void sift_up(Store *s, size_t i) {
        HeapItem item = s->heap[i];

        while (i > 0) {
                size_t p = (i - 1) / 2;

                if (s->heap[p].deadline <= item.deadline)
                        break;
                heap_put(s, i, s->heap[p]);
                i = p;
        }
        heap_put(s, i, item);
}

static void sift_down(Store *s, size_t i) {
        HeapItem item = s->heap[i];

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= s->heap_n)
                        break;
                if (c + 1 < s->heap_n && s->heap[c + 1].deadline < s->heap[c].deadline)
                        c++;
                if (s->heap[c].deadline >= item.deadline)
                        break;
                heap_put(s, i, s->heap[c]);
                i = c;
        }
        heap_put(s, i, item);
}

/* Make room for one more TTL, so that expire_set() cannot fail. */
int expire_reserve(Store *s) {
        HeapItem *h;
        size_t cap;

        if (s->heap_n < s->heap_cap)
                return 0;
        cap = MAX(s->heap_cap * 2, (size_t) HEAP_MIN);
        if (cap > NO_HEAP)
                return -ENOBUFS;
        h = mem_realloc(s, s->heap, cap * sizeof(HeapItem));
        if (!h)
                return -ENOMEM;
        s->heap = h;
        s->heap_cap = cap;
        return 0;
}

static void heap_maybe_shrink(Store *s) {
        size_t cap;
        HeapItem *h;

        if (s->heap_n == 0) {
                mem_free(s, s->heap);
                s->heap = NULL;
                s->heap_cap = 0;
                return;
        }
        if (s->heap_cap <= HEAP_MIN || s->heap_n >= s->heap_cap / 4)
                return;
        cap = s->heap_cap / 2;
        h = mem_realloc(s, s->heap, cap * sizeof(HeapItem));
        if (h) {
                s->heap = h;
                s->heap_cap = cap;
        }
}

uint64_t entry_deadline(const Store *s, const Entry *e) {
        return e->heap_idx == NO_HEAP ? UINT64_MAX : s->heap[e->heap_idx].deadline;
}

/* Callers ran expire_reserve() first (or freed a slot just before). */
void expire_set(Store *s, Entry *e, uint64_t deadline) {
        size_t i;

        if (e->heap_idx != NO_HEAP) {
                uint64_t old;

                i = e->heap_idx;
                old = s->heap[i].deadline;
                s->heap[i].deadline = deadline;
                if (deadline < old)
                        sift_up(s, i);
                else
                        sift_down(s, i);
                return;
        }
        i = s->heap_n++;
        s->heap[i] = (HeapItem) { .deadline = deadline, .e = e };
        sift_up(s, i);
}

void expire_clear(Store *s, Entry *e) {
        size_t i = e->heap_idx;

        if (i == NO_HEAP)
                return;
        e->heap_idx = NO_HEAP;
        s->heap_n--;
        if (i != s->heap_n) {
                uint64_t old = s->heap[i].deadline;

                heap_put(s, i, s->heap[s->heap_n]);
                if (s->heap[i].deadline < old)
                        sift_up(s, i);
                else
                        sift_down(s, i);
        }
        heap_maybe_shrink(s);
}

void expire_free(Store *s) {
        mem_free(s, s->heap);
        s->heap = NULL;
        s->heap_n = s->heap_cap = 0;
}

uint64_t store_next_deadline(const Store *s) {
        return s->heap_n > 0 ? s->heap[0].deadline : UINT64_MAX;
}

size_t store_expire_due(Store *s, uint64_t now_ms, size_t max) {
        size_t n = 0;

        while (s->heap_n > 0 && s->heap[0].deadline <= now_ms && (max == 0 || n < max)) {
                Entry *e = s->heap[0].e;

                notify(s, e->key, "expired");
                entry_delete(s, e);
                n++;
        }
        return n;
}
