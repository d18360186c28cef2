/* tests/integration/tunnel_helpers.h -- the tunnel half of the harness: WebSocket nodes and
 * clients on python3-websockets, `show tunnels`, and raw nodes the test plays itself. */
#ifndef TUNNEL_HELPERS_H
#define TUNNEL_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/integration/harness.h"

/*
 * Used by suites declared with `.init = h_setup, .fini = h_teardown`, as in harness.h: the
 * processes below are started with h_spawn (stopped at teardown), and what the functions return
 * is harness-owned (it lives until the end of the test).
 */

/* Debian's python3 has python3-websockets (make deps); a pyenv python3 in PATH may not. */
#define WS_PYTHON "/usr/bin/python3"

#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* A WebSocket handshake request for `path` (a string literal). */
#define WS_REQUEST(path)                                                                           \
    "GET " path " HTTP/1.1\r\n"                                                                    \
    "Host: " H_HOST "\r\n"                                                                         \
    "Connection: Upgrade\r\n"                                                                      \
    "Upgrade: websocket\r\n"                                                                       \
    "Sec-WebSocket-Key: " WS_KEY "\r\n"                                                            \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "\r\n"

/* A node's 101 to it. */
#define WS_SWITCH                                                                                  \
    "HTTP/1.1 101 Switching Protocols\r\n"                                                         \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Accept: " WS_ACCEPT "\r\n"                                                      \
    "\r\n"

static inline size_t
tun_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* --- python3-websockets --- */

/* The top of the source tree: $XF_SRC (the Makefile sets it), else the current directory. */
const char *ws_src(void);
/* Fails the test, saying how to fix it, when python3-websockets cannot be imported. */
void ws_need_python(void);

struct ws_node {
    struct h_proc *proc;
    int port;
    char addr[32]; /* "127.0.0.1:PORT", as show nodes and show tunnels write it */
    const char *log;
};

/* Starts tests/integration/ws_echo.py as `name` on a free loopback port and waits until it
 * listens: it greets each client with "hello from NAME", then echoes every message. */
struct ws_node *ws_node_start(const char *name);
/* Starts the Python script tests/integration/SCRIPT on `url` with more arguments
 * (NULL-terminated, at most 28); its output goes to `log` in the scratch directory. */
struct h_proc *ws_script_start(const char *script, const char *name, const char *log,
                               const char *url, const char *const more[]);
/* Starts tests/integration/ws_client.py on `url` with more arguments (NULL-terminated); its
 * output goes to ws-client-NAME.log. */
struct h_proc *ws_client_start(const char *name, const char *url, const char *const more[]);

/* --- show tunnels --- */

/* The count of `show tunnels` for CLUSTER ADDRESS, or -1 when the node is not listed. */
long long tunnels_of(int fd, const char *cluster, const char *addr);
/* Polls `show tunnels` until the node's count is `want`; fails showing the reply when not. */
void await_tunnels(int fd, const char *cluster, const char *addr, long long want);
/* The "total x=N y=M" line of `show tunnels`. */
const char *tunnels_total(int fd);

/* --- a node the test plays --- */

struct raw_node {
    int lfd; /* the listening socket; the test closes it */
    int port;
    char addr[32];
};

/* Listens on a free loopback port. */
struct raw_node *raw_node_start(void);
/* The next connection crossfade opens to the node. */
int raw_accept(struct raw_node *n);
/* Reads from fd until `n` bytes are in buf or timeout_ms passed without a byte, or EOF; returns
 * how many were read. */
size_t raw_recv(int fd, char *buf, size_t n, int timeout_ms);
/* Reads a request head on fd (asserts one comes); the bytes after it go to *rest (may be 0). */
const char *raw_read_head(int fd, const char **rest, size_t *rest_len);
/* Sends every byte (asserts that it can). */
void raw_send(int fd, const void *data, size_t len);
/* Whether the peer of fd ended its sending (EOF, or a reset) within timeout_ms with no byte. */
bool raw_wait_eof(int fd, int timeout_ms);
/* Reads exactly `len` bytes the client received (those already buffered first), asserts that
 * they are `want`. */
void conn_expect(struct h_conn *c, const char *want, size_t len);
/* The client's peer ended its sending: nothing pending, and EOF within timeout_ms. */
bool conn_eof(struct h_conn *c, int timeout_ms);

struct raw_tunnel {
    struct h_conn *c; /* the client */
    int node;         /* the node's side of crossfade's connection */
    size_t head_len;  /* the 101 head the client received */
    const char *seen; /* the request head the node received */
};

/*
 * Opens a tunnel through p to the raw node n: the client sends `request` followed by `early`
 * in one write, the node answers WS_SWITCH followed by `node_first`. Returns once the client read
 * the 101 head (asserting its fields); what followed it stays in the client's buffer, `early`
 * waits in the node's socket.
 */
struct raw_tunnel raw_tunnel_open(struct h_proxy *p, struct raw_node *n, const char *request,
                                  const char *early, const char *node_first);

#endif
