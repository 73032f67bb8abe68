/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "peer.h"
#include "workers.h"

bool worker_id_is_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > WORKER_ID_MAX)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

/* "name@instance.service" -> "instance" */
static char *unit_instance(const char *unit) {
        const char *at = unit ? strchr(unit, '@') : NULL, *dot;

        if (!at)
                return NULL;
        dot = strrchr(at, '.');
        if (!dot || dot == at + 1)
                return NULL;
        return strndup(at + 1, dot - at - 1);
}

int worker_id_derive(const char *unit, const char *unique_name, char **ret) {
        char *id = unit_instance(unit);

        if (id && worker_id_is_valid(id)) {
                *ret = id;
                return 0;
        }
        free(id);
        if (!unique_name || asprintf(&id, "bus_%s", unique_name + (unique_name[0] == ':')) < 0)
                return -ENOMEM;
        for (char *p = id; *p; p++)
                if (*p == '.' || *p == '-')
                        *p = '_';
        if (!worker_id_is_valid(id)) {
                free(id);
                return -EINVAL;
        }
        *ret = id;
        return 0;
}

/* "bus_1_42": the shape worker_id_derive() gives a unique name; "bus_p2p_7" the name of a
 * private-socket connection (":p2p.7") */
static bool id_is_unique_name_form(const char *id) {
        const char *p = id + strlen("bus_");

        if (!strneq(id, "bus_", strlen("bus_")) || !*p)
                return false;
        if (strneq(p, "p2p_", strlen("p2p_")))
                p += strlen("p2p_");
        if (!*p)
                return false;
        for (; *p; p++)
                if (!((*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

WorkerClaim worker_id_claim(const char *id, const char *unit, const char *unique_name) {
        _cleanup_(freep) char *instance = unit_instance(unit), *own = NULL;

        if (instance && streq(instance, id))
                return WORKER_CLAIM_OWN;
        if (!id_is_unique_name_form(id))
                return WORKER_CLAIM_NONE;
        if (unique_name && asprintf(&own, "bus_%s", unique_name + (unique_name[0] == ':')) >= 0) {
                for (char *c = own; *c; c++)
                        if (*c == '.' || *c == '-')
                                *c = '_';
                if (streq(own, id))
                        return WORKER_CLAIM_OWN;
        }
        return WORKER_CLAIM_FOREIGN;
}

int workers_check_claim(Hub *h, Peer *p, const char *id, Peer **ret_squatter) {
        Peer *holder = workers_find(h, id);
        WorkerClaim claim = worker_id_claim(id, p->unit, p->unique_name);

        if (holder == p)
                return -EALREADY;
        if (claim == WORKER_CLAIM_FOREIGN)
                return -EPERM;
        if (!holder)
                return 0;
        if (claim == WORKER_CLAIM_OWN && worker_id_claim(id, holder->unit, holder->unique_name) != WORKER_CLAIM_OWN) {
                *ret_squatter = holder;
                return 1;
        }
        return -EADDRINUSE;
}

Peer *workers_find(Hub *h, const char *id) {
        return hashmap_get(h->workers, id);
}

size_t workers_count(const Hub *h) {
        return hashmap_size(h->workers);
}

int workers_add(Hub *h, Peer *p, const char *id) {
        Peer *holder = workers_find(h, id);
        char *copy;
        int r;

        if (holder == p)
                return -EALREADY;
        if (holder)
                return -EADDRINUSE;
        if (p->id)
                return -EBUSY;
        copy = strdup(id);
        if (!copy)
                return -ENOMEM;
        r = hashmap_put(h->workers, copy, p);
        if (r < 0) {
                free(copy);
                return r;
        }
        p->id = copy;
        LIST_APPEND(workers, h->worker_list, p);
        h->stats.workers_joined++;
        return 0;
}

bool workers_remove(Hub *h, Peer *p) {
        if (!p->id)
                return false;
        hashmap_remove(h->workers, p->id);
        LIST_REMOVE(workers, h->worker_list, p);
        p->id = mfree(p->id);
        h->stats.workers_left++;
        return true;
}
