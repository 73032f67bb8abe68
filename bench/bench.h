/* SPDX-License-Identifier: MIT */
#pragma once

/* The baseline service: the floor the bus itself sets. */
#define BENCH_BASE_NAME "org.clusterhub.BenchBaseline"
#define BENCH_BASE_PATH "/org/clusterhub/Bench"
#define BENCH_BASE_IFACE "org.clusterhub.Bench1"

/* Helpers talk to the benchmark over this descriptor. */
#define BENCH_CTL_FD 3

/* Small values, the same for the hub, the baseline and Redis. */
#define BENCH_VALUE "value-0123456789"
#define BENCH_PAYLOAD "payload-0123456789"

int helper_baseline_service(const char *address);
int helper_subscriber(const char *address, const char *rule);
int helper_scale_clients(const char *address, unsigned first, unsigned count);
int helper_worker(const char *address, const char *id, char **methods);
int helper_scale_workers(const char *address, unsigned first, unsigned count);
int helper_p2p_baseline(const char *path);
/* Sets KEY to increasing integers at RATE writes per second; counts the acknowledged ones. */
int helper_paced_writer(const char *address, const char *key, unsigned rate);
