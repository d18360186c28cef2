/* tests/integration/etcd_helpers.h -- real etcd members on loopback for the fleet tests: started
 * in the test's scratch directory, killed at teardown with every process the harness started. */
#ifndef ETCD_HELPERS_H
#define ETCD_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/integration/harness.h"

#define H_ETCD_MAX     3
#define H_ETCD_WAIT_MS 20000 /* the longest wait for a member to answer */

struct h_etcd_member {
    struct h_proc *proc;
    int client_port;
    int peer_port;
    char name[8];
    char url[40]; /* http://127.0.0.1:client_port */
    char **argv;  /* kept to start it again with the same data */
};

extern struct h_etcd_member h_etcd[H_ETCD_MAX];
extern size_t h_etcd_n;

/*
 * Starts n (1 or 3) members with fresh data directories in the test's scratch directory (removed
 * at teardown, the processes killed then; heartbeat 100 ms, election 1 s) and
 * waits until each answers. Skips the test when etcd is not installed ($XF_ETCD, else PATH).
 */
void h_etcd_start(size_t n);
/* Starts member m again (same data, same ports) without waiting; h_etcd_restart waits until it
 * answers. */
void h_etcd_spawn(struct h_etcd_member *m);
void h_etcd_restart(struct h_etcd_member *m);
/* Kills member m (SIGKILL) and waits for it to be gone. */
void h_etcd_kill(struct h_etcd_member *m);
/* POSTs `body` to `path` on m (etcd's JSON gateway); returns the 200's body (harness-owned). */
const char *h_etcd_post(const struct h_etcd_member *m, const char *path, const char *body);
/* Whether m is the leader now. */
bool h_etcd_is_leader(const struct h_etcd_member *m);
/* The index of the leader, waiting up to H_ETCD_WAIT_MS for one to be elected. */
size_t h_etcd_leader(void);
/* The members' endpoints as a YAML flow sequence: ["http://127.0.0.1:P1", ...]. */
const char *h_etcd_endpoints_yaml(void);

#endif
