/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib.h>

#include "locks.h"

/* Callers of lock_unlock()/lock_refresh(): an owner (a connection, with its uid if it has one,
 * as the glue passes it), or a uid without a connection. */
static inline LockCaller caller_of(const LockOwner *o) {
        return (LockCaller) { .owner = o, .uid = o ? o->uid : 0, .has_uid = o && o->has_uid };
}
#define BY(o) ((LockCaller[1]) { caller_of(o) })
#define BY_UID(u) (&(LockCaller) { .uid = (u), .has_uid = true })

/* One recorded callback. */
typedef struct Event {
        char kind;      /* 'g' granted, 'c' cancelled */
        int table;      /* TableCtx.no */
        int id;         /* GPOINTER_TO_INT(waiter_token) */
        uint64_t token; /* granted */
        int error;      /* cancelled */
} Event;

typedef struct Fixture Fixture;

typedef struct TableCtx {
        Fixture *f;
        int no;
        LockTable *t;
} TableCtx;

struct Fixture {
        uint64_t now;
        LockHub *hub;
        TableCtx tables[2];
        GArray *events;
        /* Optional hooks run from inside the callbacks, after recording. */
        void (*on_granted)(Fixture *f, TableCtx *c, int id, uint64_t token);
        void (*on_cancelled)(Fixture *f, TableCtx *c, int id, int error);
        void *hook_data;
};

static inline uint64_t fixture_clock(void *userdata) {
        return ((Fixture *) userdata)->now;
}

static inline void fixture_granted(void *userdata, void *waiter_token, uint64_t token) {
        TableCtx *c = userdata;
        Event e = { .kind = 'g', .table = c->no, .id = GPOINTER_TO_INT(waiter_token), .token = token };

        g_array_append_val(c->f->events, e);
        if (c->f->on_granted)
                c->f->on_granted(c->f, c, e.id, token);
}

static inline void fixture_cancelled(void *userdata, void *waiter_token, int error) {
        TableCtx *c = userdata;
        Event e = { .kind = 'c', .table = c->no, .id = GPOINTER_TO_INT(waiter_token), .error = error };

        g_array_append_val(c->f->events, e);
        if (c->f->on_cancelled)
                c->f->on_cancelled(c->f, c, e.id, error);
}

static inline void fixture_setup_limits(Fixture *f, const LockLimits *limits) {
        static const LockTableCallbacks cb = {
                .granted = fixture_granted,
                .cancelled = fixture_cancelled,
        };

        *f = (Fixture) {};
        f->events = g_array_new(FALSE, TRUE, sizeof(Event));
        g_assert_cmpint(lock_hub_new(fixture_clock, f, &f->hub), ==, 0);
        for (int i = 0; i < 2; i++) {
                f->tables[i].f = f;
                f->tables[i].no = i;
                g_assert_cmpint(lock_table_new(f->hub, limits, &cb, &f->tables[i], &f->tables[i].t), ==, 0);
        }
}

static inline void fixture_setup(Fixture *f, gconstpointer data) {
        fixture_setup_limits(f, NULL);
}

static inline void fixture_teardown(Fixture *f, gconstpointer data) {
        f->on_granted = NULL;
        f->on_cancelled = NULL;
        lock_hub_free(f->hub);
        g_array_unref(f->events);
}

static inline Event *event_at(Fixture *f, guint i) {
        g_assert_cmpuint(i, <, f->events->len);
        return &g_array_index(f->events, Event, i);
}
