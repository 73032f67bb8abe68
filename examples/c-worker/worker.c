/* SPDX-License-Identifier: MIT */
/*
 * clusterhub-example-worker: a worker written with the libclusterhub runtime (ch-runtime.h).
 *
 *   clusterhub-example-worker [--system | --address=ADDRESS] [ID]
 *
 * - registers as worker ID (absent: the hub derives it, e.g. "3" for worker@3.service) and
 *   registers again by itself whenever the hub restarts;
 * - serves the request "upper" in namespace "default": replies its string payload in upper case,
 *     busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default \
 *             org.clusterhub.Requests1 Request 'ssva{sv}' '' upper s hello 0
 * - listens to the "jobs" family of events; on "jobs.run" it runs the job under the cluster-wide
 *   lock "jobs" (one job at a time across all workers) and emits "jobs.done" with the job name,
 *     busctl --user call org.clusterhub.Hub1 /org/clusterhub/Hub1/ns/default \
 *             org.clusterhub.Events1 Emit sv jobs.run s nightly-report
 * - SIGTERM / SIGINT end it with exit status 0.  A hub restart does not end it (it registers
 *   again); losing the bus does: the runtime logs which bus was lost, ch_client_run() returns
 *   -ECONNRESET and the worker exits with status 1, so that Restart=on-failure starts it again.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clusterhub/clusterhub.h>
#include <clusterhub/ch-runtime.h>

static int append_string(sd_bus_message *m, void *userdata) {
        return sd_bus_message_append(m, "v", "s", (const char *) userdata);
}

/* Request "upper": reply at once.  (A handler may also keep the request with ch_request_ref()
 * and reply later from the loop.) */
static int on_upper(ChRequest *req, void *userdata) {
        const char *in = NULL;
        char *out;
        int r;

        if (sd_bus_message_read(ch_request_get_payload(req), "v", "s", &in) < 0)
                return ch_request_fail(req, "org.clusterhub.Example.Error.BadPayload", "upper wants a string.");
        out = strdup(in);
        if (!out)
                return -ENOMEM;
        for (char *p = out; *p; p++)
                *p = (char) toupper((unsigned char) *p);
        r = ch_request_reply(req, append_string, out);
        free(out);
        return r;
}

static int run_job(ChClient *c, uint64_t token, void *userdata) {
        const char *job = userdata;

        /* the fencing token lets a protected resource reject a holder that lost the lock */
        printf("running job %s under lock token %llu\n", job, (unsigned long long) token);
        fflush(stdout);
        return 0;
}

static int on_jobs(const char *event, const char *origin, sd_bus_message *payload, void *userdata) {
        ChClient *c = userdata;
        const char *job = "?";
        int r;

        (void) sd_bus_message_read(payload, "v", "s", &job);
        printf("%s from %s: %s\n", event, origin, job);
        fflush(stdout);
        if (strcmp(event, "jobs.run") != 0)
                return 0;
        r = ch_with_lock(c, NULL, "jobs", NULL, run_job, (void *) job);
        if (r < 0) {
                fprintf(stderr, "Job %s: %s (%s)\n", job, strerror(-r), ch_client_get_last_error(c)->message ?: "");
                return 0;
        }
        /* local listeners (this one, for jobs.done) first, then every other process */
        (void) ch_emit(c, NULL, "jobs.done", append_string, (void *) job);
        return 0;
}

static void on_registered(ChClient *c, const char *id, int error, void *userdata) {
        if (error < 0)
                fprintf(stderr, "Registering again failed: %s\n", strerror(-error));
        else
                printf("registered as worker %s\n", id);
        fflush(stdout);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return ch_client_exit(userdata, 0);
}

int main(int argc, char *argv[]) {
        ChClientOptions opts = { .bus_type = CH_BUS_USER };
        const char *id = NULL;
        ChClient *c = NULL;
        sigset_t mask;
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--system") == 0)
                        opts.bus_type = CH_BUS_SYSTEM;
                else if (strncmp(argv[i], "--address=", 10) == 0)
                        opts.address = argv[i] + 10;
                else if (argv[i][0] == '-') {
                        fprintf(stderr, "Usage: %s [--system | --address=ADDRESS] [ID]\n", argv[0]);
                        return EXIT_FAILURE;
                } else
                        id = argv[i];
        }

        r = ch_client_new(&c, &opts);
        if (r < 0) {
                fprintf(stderr, "Cannot connect to the bus: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(ch_client_get_event(c), NULL, SIGTERM, on_signal, c);
        (void) sd_event_add_signal(ch_client_get_event(c), NULL, SIGINT, on_signal, c);

        ch_client_set_registered_callback(c, on_registered, NULL);
        r = ch_register(c, id);
        if (r < 0) {
                fprintf(stderr, "Register: %s\n", ch_client_get_last_error(c)->message ?: strerror(-r));
                goto finish;
        }
        r = ch_on_prefix(c, NULL, "jobs", on_jobs, c, NULL);
        if (r < 0)
                goto finish;
        r = ch_serve(c, NULL, "upper", on_upper, NULL);
        if (r < 0) {
                fprintf(stderr, "Serve: %s\n", ch_client_get_last_error(c)->message ?: strerror(-r));
                goto finish;
        }
        printf("ready: serving \"upper\", listening to \"jobs\"\n");
        fflush(stdout);
        r = ch_client_run(c);
        if (r < 0)
                fprintf(stderr, "Stopping: %s\n", strerror(-r));
finish:
        ch_client_free(c);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
