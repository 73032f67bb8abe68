/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers shared by the store's unit tests. */

#include <glib.h>
#include <string.h>

#include "store.h"

#define SV_S(x) ((StoreValue) { .type = 's', .str = { (x), strlen(x) } })
#define SV_T(t, x) ((StoreValue) { .type = (t), .str = { (x), strlen(x) } })
#define SV_I(t, x) ((StoreValue) { .type = (t), .i = (x) })
#define SV_U(t, x) ((StoreValue) { .type = (t), .u = (x) })
#define SV_D(x) ((StoreValue) { .type = 'd', .d = (x) })
#define SV_B(x) ((StoreValue) { .type = 'b', .i = (x) })
#define SV_BLOB(sig, data, len) ((StoreValue) { .type = 'v', .blob = { (sig), (data), (len) } })

typedef struct Served {
        void *token;
        char *key;
        StoreValue value;
} Served;

typedef struct Fixture {
        Store *s;
        StoreAccount account;
        GPtrArray *events;   /* "key event" strings */
        GArray *served;      /* Served */
} Fixture;

static inline void fx_notify(void *userdata, const char *key, const char *event) {
        Fixture *f = userdata;

        g_ptr_array_add(f->events, g_strdup_printf("%s %s", key, event));
}

static inline void fx_served(void *userdata, void *token, const char *key, StoreValue *value) {
        Fixture *f = userdata;
        Served sv = { .token = token, .key = g_strdup(key), .value = *value };

        g_array_append_val(f->served, sv);
}

static inline void fx_setup_limits(Fixture *f, const StoreLimits *limits) {
        memset(f, 0, sizeof(*f));
        f->events = g_ptr_array_new_with_free_func(g_free);
        f->served = g_array_new(FALSE, TRUE, sizeof(Served));
        f->account.limit = STORE_DEFAULT_HUB_MEMORY;
        g_assert_cmpint(store_new(&f->s, limits, &f->account, fx_notify, fx_served, f), ==, 0);
        store_set_seed(f->s, 42);
}

static inline void fx_setup(Fixture *f, gconstpointer data) {
        fx_setup_limits(f, NULL);
}

static inline void fx_teardown(Fixture *f, gconstpointer data) {
        store_free(f->s);
        g_assert_cmpuint(f->account.used, ==, 0);
        for (guint i = 0; i < f->served->len; i++) {
                Served *sv = &g_array_index(f->served, Served, i);

                g_free(sv->key);
                store_value_clear(&sv->value);
        }
        g_array_free(f->served, TRUE);
        g_ptr_array_free(f->events, TRUE);
}

static inline void fx_served_clear(Fixture *f) {
        for (guint i = 0; i < f->served->len; i++) {
                Served *sv = &g_array_index(f->served, Served, i);

                g_free(sv->key);
                store_value_clear(&sv->value);
        }
        g_array_set_size(f->served, 0);
}

/* Forget the events recorded so far. */
static inline void fx_clear(Fixture *f) {
        g_ptr_array_set_size(f->events, 0);
}

/* The events since the last call, joined with ", ". */
static inline char *fx_events(Fixture *f) {
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < f->events->len; i++) {
                if (i > 0)
                        g_string_append(s, ", ");
                g_string_append(s, f->events->pdata[i]);
        }
        g_ptr_array_set_size(f->events, 0);
        return g_string_free(s, FALSE);
}

#define assert_events(f, expected)                                  \
        do {                                                        \
                g_autofree char *_ev = fx_events(f);                \
                g_assert_cmpstr(_ev, ==, (expected));               \
        } while (0)
