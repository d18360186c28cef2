/* tests/integration/catalogue_helpers.c -- runs the catalogue's cases (catalogue_helpers.h). */
#include "tests/integration/catalogue_helpers.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <string.h>

/* Waits until the node holds at least `n` bytes (asserts that it does within H_IO_TIMEOUT_MS). */
static void
cat_wait_node_bytes(struct h_fake *f, size_t n)
{
    uint64_t until = h_now_ms() + H_IO_TIMEOUT_MS;

    while (h_fake_bytes(f) < n) {
        cr_assert(lt(u64, h_now_ms(), until), "the node got %zu bytes of %zu:\n%s", h_fake_bytes(f),
                  n, h_fake_conns(f) > 0 ? h_fake_received(f, 0, NULL) : "");
        h_sleep_ms(5);
    }
}

/* The client's response: its status, crossfade's reason, and whether the connection goes on. */
static void
cat_req_client(const struct cat_req *k, struct h_conn *c)
{
    struct h_msg m;

    cr_assert(eq(int, h_read_response(c, &m), 0), "no response: %s", m.error);
    cr_assert(eq(int, m.status, k->status), "status %d, expected %d; body: %s", m.status, k->status,
              m.body);
    if (k->why != NULL)
        cr_assert(ne(ptr, strstr(m.body, k->why), NULL), "the answer does not say \"%s\": %s",
                  k->why, m.body);
    if (k->closed) {
        cr_assert(eq(int, h_header_has_token(&m, "Connection", "close"), !k->close_unsaid),
                  "Connection: close %s in\n%s", k->close_unsaid ? "said" : "not said", m.head);
        cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "the connection stayed open after %d",
                  m.status);
    } else {
        cr_assert(not(h_header_has_token(&m, "Connection", "close")), "Connection: close in\n%s",
                  m.head);
        cr_assert(eq(int, h_conn_wait(c, 200), H_OPEN),
                  "bytes or a close followed the %d (%zu bytes pending)", m.status, h_pending(c));
    }
}

void
cat_req_run(const struct cat_req *k)
{
    struct h_fake *f = h_fake_start1(k->reply != NULL ? k->reply : CAT_OK,
                                     k->silent ? H_FAKE_SILENT : H_FAKE_KEEP);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}},
                                                             .max_body_bytes = k->max_body_bytes,
                                                             .request_buffer = k->request_buffer});
    struct h_conn *c = h_connect(p->port);
    const char *raw = k->raw;
    size_t len = k->raw_len;

    if (k->pipelined != NULL) {
        char *both = h_alloc(len + strlen(k->pipelined) + 1);

        memcpy(both, raw, len);
        memcpy(both + len, k->pipelined, strlen(k->pipelined));
        raw = both;
        len += strlen(k->pipelined);
    }
    /* crossfade may close before it read everything: a failed send is not the point. */
    (void)h_send(c, raw, len);
    if (k->rest != NULL) {
        cr_assert(ne(ptr, (void *)k->node, NULL), "a case with `rest` says what the node gets");
        cat_wait_node_bytes(f, strlen(k->node));
        (void)h_send_str(c, k->rest);
    }
    cat_req_client(k, c);
    if (k->node == NULL) {
        h_fake_expect_only_sentinels(f, p->port, NULL);
    } else {
        size_t got_len;
        const char *got;

        cat_wait_node_bytes(f, strlen(k->node));
        if (k->node_closed)
            cr_assert(h_fake_wait_peer_closed(f, 0, H_IO_TIMEOUT_MS),
                      "crossfade kept the node connection open");
        cr_assert(eq(sz, h_fake_conns(f), (size_t)1), "the node got %zu connections",
                  h_fake_conns(f));
        got = h_fake_received(f, 0, &got_len);
        cr_assert(eq(sz, got_len, strlen(k->node)), "the node got %zu bytes, not %zu:\n%s", got_len,
                  strlen(k->node), got);
        cr_assert(eq(str, (char *)got, (char *)k->node), "the node got something else");
    }
    h_proxy_finish(p);
}

/* What the client's response must be (a cut one: not whole, and the connection closes). */
static void
cat_resp_client(const struct cat_resp *k, struct h_conn *c)
{
    struct h_msg m;
    int rc = h_read_response_ex(c, &m, k->flags, H_IO_TIMEOUT_MS, NULL, NULL);

    if (k->status == 0) {
        cr_assert(ne(int, rc, 0), "a whole response reached the client:\n%s%s", m.head, m.body);
        cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "the cut connection stayed open");
        return;
    }
    cr_assert(eq(int, rc, 0), "no whole response: %s", m.error);
    cr_assert(eq(int, m.status, k->status), "status %d, expected %d; body: %s", m.status, k->status,
              m.body);
    if (k->status_line != NULL)
        cr_assert(eq(int, strncmp(m.head, k->status_line, strlen(k->status_line)), 0),
                  "the status line is not \"%s\":\n%s", k->status_line, m.head);
    if (k->body != NULL)
        cr_assert(eq(str, m.body, (char *)k->body), "the client got another body");
    if (k->why != NULL)
        cr_assert(ne(ptr, strstr(m.body, k->why), NULL), "the answer does not say \"%s\": %s",
                  k->why, m.body);
    if (k->closed)
        cr_assert(eq(int, h_conn_wait(c, 3000), H_CLOSED), "the connection stayed open");
    else
        cr_assert(eq(int, h_conn_wait(c, 200), H_OPEN),
                  "bytes or a close followed the response (%zu bytes pending)", h_pending(c));
}

void
cat_resp_run(const struct cat_resp *k)
{
    struct h_fake_reply replies[] = {
        {.bytes = k->reply, .len = k->reply_len, .action = k->action},
        {.bytes = CAT_OK, .action = H_FAKE_KEEP},
    };
    struct h_fake *f = h_fake_start(replies, 2);
    struct h_proxy *p = h_proxy_start(&(struct h_proxy_opts){.x = {{h_fake_port(f)}}});
    struct h_conn *c = h_connect(p->port);
    const char *req = k->req != NULL ? k->req : "GET /r1 HTTP/1.1\r\nHost: " H_HOST "\r\n\r\n";
    struct h_msg m;

    cr_assert(eq(int, h_send_str(c, req), 0));
    cat_resp_client(k, c);
    /* The request went to the node once, on its first connection. */
    cr_assert(h_fake_wait_requests(f, 1, H_IO_TIMEOUT_MS));
    cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1));
    if (k->pool == CAT_POOL_ANY) {
        h_proxy_finish(p);
        return; /* the next request could meet either connection: nothing to learn from it */
    }
    if (k->status == 0 || k->closed)
        c = h_connect(p->port); /* another worker's pool, maybe: reuse is not checked then */
    cr_assert(eq(int, h_get(c, "/r2", &m), 0), "the next request: %s", m.error);
    if (k->pool == CAT_POOL_REUSED) {
        /* The same node connection answers with the same reply. */
        cr_assert(eq(int, m.status, k->status), "the next request got %d", m.status);
        cr_assert(eq(sz, h_fake_conns(f), (size_t)1), "the node connection was not reused");
        cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)2));
    } else {
        cr_assert(eq(int, m.status, 200), "the next request got %d: %s", m.status, m.body);
        cr_assert(eq(str, m.body, "ok\n"), "the next request got another response's bytes");
    }
    if (k->pool == CAT_POOL_CLOSED) {
        cr_assert(h_fake_wait_peer_closed(f, 0, H_IO_TIMEOUT_MS),
                  "crossfade kept the node connection open");
        cr_assert(eq(sz, h_fake_requests(f, 0), (size_t)1),
                  "the next request went on the node connection of the bad response");
        cr_assert(eq(sz, h_fake_conns(f), (size_t)2));
    }
    h_proxy_finish(p);
}
