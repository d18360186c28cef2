/* tests/fuzz/fuzz_px.h -- the real proxy in one process for the request and response harnesses:
 * a worker (proxy/px_worker.c) on its event loop, a client on one end of a socketpair, and a fake
 * node listening on loopback in the same loop (docs/fuzzing.md). */
#ifndef FUZZ_PX_H
#define FUZZ_PX_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>

#define FZ_PX_NODE_CONNS 16 /* node connections kept per run; more are refused (closed) */

struct fz_px_node_conn {
    int fd; /* owned; -1 once closed */
    struct event *ev;
    struct evbuffer *got; /* owned: every byte the node received on it */
    void *user;           /* the harness's, per connection (freed by it in its close hook) */
};

struct fz_px_hooks {
    /* New bytes arrived on a node connection (already appended to nc->got). */
    void (*node_data)(struct fz_px_node_conn *nc, const char *data, size_t len, void *arg);
    /* A node connection ends (the proxy closed it, or the run ends): free nc->user. */
    void (*node_close)(struct fz_px_node_conn *nc, bool by_proxy, void *arg);
    void *arg;
};

/* Builds the proxy once per process (cluster x: the fake node; y: weight 0). */
void fz_px_init(const struct fz_px_hooks *hooks);
/* A new client connection: returns after the proxy took it. */
void fz_px_open(void);
/* Bytes from the client, then the loop runs until nothing moves. */
void fz_px_client_send(const void *data, size_t len);
/* The client half-closes (EOF to the proxy), then the loop runs until nothing moves. */
void fz_px_client_eof(void);
/* Bytes from a node connection to the proxy (blocking until written), then the loop settles. */
void fz_px_node_send(struct fz_px_node_conn *nc, const void *data, size_t len);
/* The node closes a connection, then the loop settles. */
void fz_px_node_eof(struct fz_px_node_conn *nc);
/* Runs the loop until nothing moves. */
void fz_px_settle(void);
/* What the client received so far, and whether the proxy closed its end. */
struct evbuffer *fz_px_client_got(void);
bool fz_px_client_closed(void);
/* The node connections of this run, in the order they were accepted. */
struct fz_px_node_conn *fz_px_node_conn(size_t i);
size_t fz_px_node_conns(void);
/* Ends the run: every connection closed and freed on both sides, the loop idle again. */
void fz_px_close(void);

#endif
