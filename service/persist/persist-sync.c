/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "persist-sync.h"

struct Syncer {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        int fd;            /* the descriptor to sync (ours, a duplicate), -1 when none */
        bool busy;         /* requested or running */
        bool stop;
        uint64_t done;     /* finished since the last collect */
        int error;         /* errno of the last failure since the last collect */
};

static void *syncer_main(void *userdata) {
        Syncer *s = userdata;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                int fd, r;

                while (!s->stop && s->fd < 0)
                        pthread_cond_wait(&s->wake, &s->lock);
                if (s->fd < 0)
                        break; /* stopped with nothing to do */
                fd = s->fd;
                s->fd = -1;
                pthread_mutex_unlock(&s->lock);

                r = fdatasync(fd) < 0 ? errno : 0;
                (void) close(fd);

                pthread_mutex_lock(&s->lock);
                s->busy = false;
                s->done++;
                if (r)
                        s->error = r;
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int syncer_new(Syncer **ret) {
        Syncer *s = calloc(1, sizeof(Syncer));
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = -1;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);
        r = -pthread_create(&s->thread, NULL, syncer_main, s);
        if (r < 0) {
                pthread_cond_destroy(&s->wake);
                pthread_mutex_destroy(&s->lock);
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

Syncer *syncer_free(Syncer *s) {
        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        (void) pthread_join(s->thread, NULL);
        if (s->fd >= 0)
                (void) close(s->fd);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
}

int syncer_request(Syncer *s, int fd) {
        int copy, r = 0;

        pthread_mutex_lock(&s->lock);
        if (s->busy)
                r = -EBUSY;
        else if ((copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
                r = -errno;
        else {
                s->fd = copy;
                s->busy = true;
                pthread_cond_signal(&s->wake);
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

void syncer_collect(Syncer *s, uint64_t *ret_done, int *ret_error) {
        pthread_mutex_lock(&s->lock);
        *ret_done = s->done;
        *ret_error = s->error;
        s->done = 0;
        s->error = 0;
        pthread_mutex_unlock(&s->lock);
}
