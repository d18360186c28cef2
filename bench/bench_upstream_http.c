/* bench/bench_upstream_http.c -- xf-upstream's requests (llhttp) and responses (routes, framing).
 */
#include "bench/bench_upstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BENCH_UP_TRUNCATED     "\n[truncated]"
#define BENCH_UP_TRUNCATED_LEN (sizeof(BENCH_UP_TRUNCATED) - 1)
#define BENCH_UP_CONTINUE      "HTTP/1.1 100 Continue\r\n\r\n"

int
bench_up_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9 || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void
bench_up_pattern_fill(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
}

/* Adds `ppm` to the accumulator and says whether this request is one of the chosen ones. */
static int
bench_up_fault(uint32_t *acc, uint32_t ppm)
{
    if (ppm == 0)
        return 0;
    *acc += ppm;
    if (*acc < BENCH_UP_PPM)
        return 0;
    *acc -= BENCH_UP_PPM;
    return 1;
}

static char *
bench_up_put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define BENCH_UP_PUT_LIT(p, lit) bench_up_put((p), (lit), sizeof(lit) - 1)

static char *
bench_up_put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *
bench_up_put_hex(char *p, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;

    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static const char *
bench_up_reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {203, "Non-Authoritative Information"},
        {204, "No Content"},
        {205, "Reset Content"},
        {206, "Partial Content"},
        {300, "Multiple Choices"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {413, "Content Too Large"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < XF_ARRAY_LEN(reasons); i++) {
        if (reasons[i].status == status)
            return reasons[i].text;
    }
    return "Unknown";
}

/* Frees the previous request's state and clears it for the next message. */
static void
bench_up_req_reset(struct bench_up_req *q)
{
    XF_FREE(q->echo);
    memset(q, 0, offsetof(struct bench_up_req, url));
}

/*
 * Routes by the path (the URL up to '?' or '#'). Named routes match the name or the name followed
 * by '/'; numbered routes take exactly one decimal number. Unknown paths get the default answer.
 */
static void
bench_up_route(struct bench_up_req *q)
{
    static const struct {
        const char *prefix;
        enum bench_up_route route;
        uint64_t max; /* 0: no number */
    } routes[] = {
        {"/echo", BENCH_UP_ROUTE_ECHO, 0},
        {"/count", BENCH_UP_ROUTE_COUNT, 0},
        {"/headers", BENCH_UP_ROUTE_HEADERS, 0},
        {"/close", BENCH_UP_ROUTE_CLOSE, 0},
        {"/bytes/", BENCH_UP_ROUTE_BYTES, BENCH_UP_N_MAX},
        {"/chunked/", BENCH_UP_ROUTE_CHUNKED, BENCH_UP_N_MAX},
        {"/nolength/", BENCH_UP_ROUTE_NOLENGTH, BENCH_UP_N_MAX},
        {"/status/", BENCH_UP_ROUTE_STATUS, 599},
        {"/delay/", BENCH_UP_ROUTE_DELAY, BENCH_UP_MS_MAX},
        {"/slowbody/", BENCH_UP_ROUTE_SLOWBODY, BENCH_UP_MS_MAX},
        {"/_counters", BENCH_UP_ROUTE_COUNTERS, 0},
    };
    const char *u = q->url;
    size_t plen = 0;

    while (plen < q->url_len && u[plen] != '?' && u[plen] != '#')
        plen++;
    q->route = BENCH_UP_ROUTE_DEFAULT;
    if (plen < 2 || u[0] != '/')
        return;
    for (size_t i = 0; i < XF_ARRAY_LEN(routes); i++) {
        size_t n = strlen(routes[i].prefix);
        if (plen < n || memcmp(u, routes[i].prefix, n) != 0)
            continue;
        if (routes[i].max == 0) {
            if (plen != n && u[n] != '/')
                continue;
            q->route = routes[i].route;
            return;
        }
        if (bench_up_parse_u64(u + n, plen - n, routes[i].max, &q->arg) == -1 ||
            (routes[i].route == BENCH_UP_ROUTE_STATUS && q->arg < 200)) {
            q->route = BENCH_UP_ROUTE_BADARG;
            return;
        }
        q->route = routes[i].route;
        return;
    }
}

static int
bench_up_on_message_begin(llhttp_t *p)
{
    struct bench_up_conn *c = p->data;

    bench_up_req_reset(&c->req);
    return 0;
}

static int
bench_up_on_method(llhttp_t *p, const char *at, size_t n)
{
    struct bench_up_conn *c = p->data;

    XF_UNUSED(n);
    if (!c->req.head_open) {
        c->req.head_open = 1;
        c->req.head_start = (size_t)(at - c->in.p);
    }
    return 0;
}

static int
bench_up_on_url(llhttp_t *p, const char *at, size_t n)
{
    struct bench_up_req *q = &((struct bench_up_conn *)p->data)->req;
    size_t take = XF_MIN(n, sizeof(q->url) - q->url_len);

    memcpy(q->url + q->url_len, at, take);
    q->url_len += take;
    if (take < n)
        q->url_cut = 1;
    return 0;
}

static int
bench_up_on_url_complete(llhttp_t *p)
{
    bench_up_route(&((struct bench_up_conn *)p->data)->req);
    return 0;
}

static int
bench_up_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct bench_up_req *q = &((struct bench_up_conn *)p->data)->req;

    /* Only "Expect" matters here: a longer name is marked too long to match anything. */
    if (q->field_len + n > sizeof(q->field)) {
        q->field_len = sizeof(q->field) + 1;
        return 0;
    }
    memcpy(q->field + q->field_len, at, n);
    q->field_len += n;
    return 0;
}

static int
bench_up_on_header_field_complete(llhttp_t *p)
{
    struct bench_up_req *q = &((struct bench_up_conn *)p->data)->req;

    q->field_expect =
        q->field_len <= sizeof(q->field) && xf_span_ieq(q->field, q->field_len, "expect");
    q->field_len = 0;
    q->value_len = 0;
    return 0;
}

static int
bench_up_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct bench_up_req *q = &((struct bench_up_conn *)p->data)->req;

    if (!q->field_expect)
        return 0;
    if (q->value_len + n > sizeof(q->value)) {
        q->value_len = sizeof(q->value) + 1;
        return 0;
    }
    memcpy(q->value + q->value_len, at, n);
    q->value_len += n;
    return 0;
}

static int
bench_up_on_header_value_complete(llhttp_t *p)
{
    struct bench_up_req *q = &((struct bench_up_conn *)p->data)->req;

    if (q->field_expect && q->value_len <= sizeof(q->value) &&
        xf_span_ieq(q->value, q->value_len, "100-continue"))
        q->expect_continue = 1;
    q->field_expect = 0;
    return 0;
}

/*
 * The head is complete: decide what the connection does with this request. Injected closes and
 * /close stop here, before any body is read; /echo pauses so the head's end is known.
 */
static int
bench_up_on_headers_complete(llhttp_t *p)
{
    struct bench_up_conn *c = p->data;
    struct bench_up_req *q = &c->req;
    const struct bench_up_cfg *cfg = c->w->cfg;
    int has_body = (p->flags & F_CHUNKED) || p->content_length > 0;
    int faults;

    q->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
    q->http10 = p->http_major == 0 || (p->http_major == 1 && p->http_minor == 0);
    q->is_head = p->method == HTTP_HEAD;
    q->upgrade = p->upgrade;
    if (p->method == HTTP_CONNECT)
        q->route = BENCH_UP_ROUTE_CONNECT;
    /* Asking for the counters is never a fault, nor a turn of the fault accumulators. */
    faults = q->route != BENCH_UP_ROUTE_COUNTERS;
    if (q->route == BENCH_UP_ROUTE_CLOSE ||
        (faults && bench_up_fault(&c->w->close_acc, cfg->close_ppm))) {
        c->closing = 1;
        return HPE_PAUSED;
    }
    if (faults && bench_up_fault(&c->w->error_acc, cfg->error_ppm))
        q->route = BENCH_UP_ROUTE_ERROR;
    if (q->route == BENCH_UP_ROUTE_COUNT) {
        if (c->xxh == NULL && (c->xxh = XXH64_createState()) == NULL)
            return -1;
        XXH64_reset(c->xxh, 0);
    }
    /* Produce only starts parsing with BENCH_UP_HEAD_ROOM bytes of room: this fits. */
    if (has_body && q->expect_continue && !q->http10) {
        memcpy(c->out.p + c->out.len, BENCH_UP_CONTINUE, sizeof(BENCH_UP_CONTINUE) - 1);
        c->out.len += sizeof(BENCH_UP_CONTINUE) - 1;
    }
    if (q->route == BENCH_UP_ROUTE_ECHO) {
        q->echo_head = 1;
        return HPE_PAUSED;
    }
    q->head_open = 0;
    return 0;
}

/* Makes room for `n` more echo bytes plus the truncation note; returns 0 or -1. */
static int
bench_up_echo_reserve(struct bench_up_req *q, size_t n)
{
    size_t need = q->echo_len + n + BENCH_UP_TRUNCATED_LEN;
    size_t cap = q->echo_cap;
    char *p;

    if (need <= cap)
        return 0;
    while (cap < need)
        cap = cap < 4096 ? 4096 : cap * 2;
    if ((p = realloc(q->echo, cap)) == NULL)
        return -1;
    q->echo = p;
    q->echo_cap = cap;
    return 0;
}

static int
bench_up_on_body(llhttp_t *p, const char *at, size_t n)
{
    struct bench_up_conn *c = p->data;
    struct bench_up_req *q = &c->req;

    q->body_len += n;
    if (q->route == BENCH_UP_ROUTE_COUNT) {
        XXH64_update(c->xxh, at, n);
    } else if (q->route == BENCH_UP_ROUTE_ECHO) {
        size_t take = (size_t)XF_MIN((uint64_t)n, BENCH_UP_ECHO_MAX - q->echo_body);
        if (take > 0) {
            if (bench_up_echo_reserve(q, take) == -1)
                return -1;
            memcpy(q->echo + q->echo_len, at, take);
            q->echo_len += take;
            q->echo_body += take;
        }
        if (take < n)
            q->echo_cut = 1;
    }
    return 0;
}

static int
bench_up_on_message_complete(llhttp_t *p)
{
    struct bench_up_conn *c = p->data;

    c->req.complete = 1;
    /* A test polls /_counters while it waits for requests: asking must not change the answer. */
    if (c->req.route != BENCH_UP_ROUTE_COUNTERS)
        bench_up_count(&c->w->requests);
    return HPE_PAUSED;
}

static const llhttp_settings_t bench_up_settings = {
    .on_message_begin = bench_up_on_message_begin,
    .on_method = bench_up_on_method,
    .on_url = bench_up_on_url,
    .on_url_complete = bench_up_on_url_complete,
    .on_header_field = bench_up_on_header_field,
    .on_header_field_complete = bench_up_on_header_field_complete,
    .on_header_value = bench_up_on_header_value,
    .on_header_value_complete = bench_up_on_header_value_complete,
    .on_headers_complete = bench_up_on_headers_complete,
    .on_body = bench_up_on_body,
    .on_message_complete = bench_up_on_message_complete,
};

void
bench_up_http_init(struct bench_up_conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &bench_up_settings);
    c->parser.data = c;
}

void
bench_up_http_fini(struct bench_up_conn *c)
{
    XF_FREE(c->req.echo);
    XXH64_freeState(c->xxh);
    c->xxh = NULL;
}

/* Sets the body to the default: the name line, or --body-bytes pattern bytes. */
static void
bench_up_resp_default_body(struct bench_up_conn *c, uint64_t *len)
{
    const struct bench_up_cfg *cfg = c->w->cfg;

    if (cfg->has_body_bytes) {
        c->resp.mem = NULL;
        *len = cfg->body_bytes;
    } else {
        c->resp.mem = cfg->name_line;
        *len = cfg->name_line_len;
    }
}

/* Sets a short body built for this response. */
static void bench_up_resp_line(struct bench_up_resp *r, uint64_t *len, const char *fmt, ...)
    XF_PRINTF(3, 4);

static void
bench_up_resp_line(struct bench_up_resp *r, uint64_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(r->line, sizeof(r->line), fmt, ap);
    va_end(ap);
    r->line_len = n < 0 ? 0 : XF_MIN((size_t)n, sizeof(r->line) - 1);
    r->mem = r->line;
    *len = r->line_len;
}

/* Clears the response state except the line buffer. */
static void
bench_up_resp_clear(struct bench_up_resp *r)
{
    memset(r, 0, offsetof(struct bench_up_resp, line));
}

/* Arms the WAIT timer; without a timer the response simply goes on at once. */
static void
bench_up_resp_wait(struct bench_up_conn *c, uint64_t ms)
{
    if (bench_up_conn_timer(c, BENCH_UP_TIMER_WAIT, ms) == 0)
        c->resp.waiting = 1;
}

/* The body of /_counters: the connections and requests of every loop so far. */
static void
bench_up_resp_counters(struct bench_up_conn *c, uint64_t *len)
{
    const struct bench_up_worker *w = c->w;
    uint64_t conns = 0, reqs = 0;

    for (unsigned i = 0; i < w->cfg->threads; i++) {
        conns += atomic_load_explicit(&w->peers[i].accepted, memory_order_relaxed);
        reqs += atomic_load_explicit(&w->peers[i].requests, memory_order_relaxed);
    }
    bench_up_resp_line(&c->resp, len, "connections=%" PRIu64 " requests=%" PRIu64 "\n", conns,
                       reqs);
}

/* Chooses status and body for the request's route; adds the route's own delay to `delay`. */
static void
bench_up_resp_route(struct bench_up_conn *c, uint64_t *len_out, uint64_t *delay)
{
    const struct bench_up_cfg *cfg = c->w->cfg;
    struct bench_up_req *q = &c->req;
    struct bench_up_resp *r = &c->resp;
    uint64_t len = 0;

    switch (q->route) {
    case BENCH_UP_ROUTE_DEFAULT:
        bench_up_resp_default_body(c, &len);
        break;
    case BENCH_UP_ROUTE_DELAY:
        *delay += q->arg;
        bench_up_resp_default_body(c, &len);
        break;
    case BENCH_UP_ROUTE_HEADERS:
        r->hop = 1;
        bench_up_resp_default_body(c, &len);
        break;
    case BENCH_UP_ROUTE_SLOWBODY:
        r->pause_pending = 1;
        r->pause_ms = q->arg;
        bench_up_resp_default_body(c, &len);
        break;
    case BENCH_UP_ROUTE_ECHO:
        if (q->echo_cut) {
            memcpy(q->echo + q->echo_len, BENCH_UP_TRUNCATED, BENCH_UP_TRUNCATED_LEN);
            q->echo_len += BENCH_UP_TRUNCATED_LEN;
        }
        r->mem = q->echo;
        len = q->echo_len;
        break;
    case BENCH_UP_ROUTE_COUNT:
        bench_up_resp_line(r, &len, "bytes=%" PRIu64 " xxh64=%016" PRIx64 "\n", q->body_len,
                           (uint64_t)XXH64_digest(c->xxh));
        break;
    case BENCH_UP_ROUTE_BYTES:
        len = q->arg;
        break;
    case BENCH_UP_ROUTE_CHUNKED:
        len = q->arg;
        r->framing = BENCH_UP_FRAME_CHUNKED;
        break;
    case BENCH_UP_ROUTE_NOLENGTH:
        len = q->arg;
        r->framing = BENCH_UP_FRAME_EOF;
        break;
    case BENCH_UP_ROUTE_STATUS:
        r->status = (int)q->arg;
        bench_up_resp_line(r, &len, "%s %d\n", cfg->name, r->status);
        if (r->status == 204 || r->status == 304) {
            r->framing = BENCH_UP_FRAME_NONE;
            len = 0;
        }
        break;
    case BENCH_UP_ROUTE_ERROR:
        r->status = 500;
        r->mem = cfg->error_line;
        len = cfg->error_line_len;
        break;
    case BENCH_UP_ROUTE_COUNTERS:
        bench_up_resp_counters(c, &len);
        break;
    case BENCH_UP_ROUTE_CONNECT:
        r->status = 405;
        r->mem = cfg->bad_line;
        len = cfg->bad_line_len;
        break;
    case BENCH_UP_ROUTE_BADARG:
    case BENCH_UP_ROUTE_CLOSE: /* answered at headers complete; kept for completeness */
        r->status = 400;
        r->mem = cfg->bad_line;
        len = cfg->bad_line_len;
        break;
    }
    *len_out = len;
}

/* Starts the answer to the complete request in c->req: status, body source, framing, delay. */
static void
bench_up_resp_begin(struct bench_up_conn *c)
{
    struct bench_up_req *q = &c->req;
    struct bench_up_resp *r = &c->resp;
    uint64_t len = 0, delay = c->w->cfg->delay_ms;

    if (q->route == BENCH_UP_ROUTE_COUNTERS)
        delay = 0; /* the counters answer at once, whatever --delay says */
    bench_up_resp_clear(r);
    r->status = 200;
    bench_up_resp_route(c, &len, &delay);
    /* HTTP/1.0 has no chunks: end such a body by closing, as servers do. */
    if (r->framing == BENCH_UP_FRAME_CHUNKED && q->http10)
        r->framing = BENCH_UP_FRAME_EOF;
    r->close_after = !q->keep_alive || q->upgrade || r->framing == BENCH_UP_FRAME_EOF ||
                     q->route == BENCH_UP_ROUTE_CONNECT;
    r->conn_keep_alive = !r->close_after && q->http10;
    r->clen = len;
    r->left = q->is_head ? 0 : len;
    r->final_chunk = r->framing == BENCH_UP_FRAME_CHUNKED && !q->is_head;
    r->pause_pending = r->pause_pending && r->left > 0;
    r->pause_at = r->left / 2;
    r->active = 1;
    r->head_pending = 1;
    if (delay > 0)
        bench_up_resp_wait(c, delay);
}

void
bench_up_http_reject(struct bench_up_conn *c, int status)
{
    const struct bench_up_cfg *cfg = c->w->cfg;
    struct bench_up_resp *r = &c->resp;

    bench_up_resp_clear(r);
    r->status = status;
    r->mem = cfg->bad_line;
    r->clen = r->left = cfg->bad_line_len;
    r->close_after = 1;
    r->active = 1;
    r->head_pending = 1;
    c->parse_dead = 1;
    c->parse_off = c->in.len;
    c->req.head_open = 0;
}

void
bench_up_http_timer(struct bench_up_conn *c)
{
    c->resp.waiting = 0;
}

/* Writes the response head; the caller made sure BENCH_UP_HEAD_ROOM bytes are free. */
static void
bench_up_resp_head(struct bench_up_conn *c)
{
    const struct bench_up_cfg *cfg = c->w->cfg;
    const struct bench_up_resp *r = &c->resp;
    char *start = c->out.p + c->out.len, *p = start;
    const char *sep = "";

    if (r->status == 200) {
        p = BENCH_UP_PUT_LIT(p, "HTTP/1.1 200 OK\r\n");
    } else {
        const char *reason = bench_up_reason(r->status);
        p = BENCH_UP_PUT_LIT(p, "HTTP/1.1 ");
        p = bench_up_put_u64(p, (uint64_t)r->status);
        *p++ = ' ';
        p = bench_up_put(p, reason, strlen(reason));
        p = BENCH_UP_PUT_LIT(p, "\r\n");
    }
    p = BENCH_UP_PUT_LIT(p, "Content-Type: text/plain\r\n");
    if (r->framing == BENCH_UP_FRAME_LENGTH) {
        p = BENCH_UP_PUT_LIT(p, "Content-Length: ");
        p = bench_up_put_u64(p, r->clen);
        p = BENCH_UP_PUT_LIT(p, "\r\n");
    } else if (r->framing == BENCH_UP_FRAME_CHUNKED) {
        p = BENCH_UP_PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    p = BENCH_UP_PUT_LIT(p, "X-Upstream: ");
    p = bench_up_put(p, cfg->name, cfg->name_len);
    p = BENCH_UP_PUT_LIT(p, "\r\n");
    if (r->close_after || r->conn_keep_alive || r->hop) {
        p = BENCH_UP_PUT_LIT(p, "Connection: ");
        if (r->close_after) {
            p = BENCH_UP_PUT_LIT(p, "close");
            sep = ", ";
        } else if (r->conn_keep_alive) {
            p = BENCH_UP_PUT_LIT(p, "keep-alive");
            sep = ", ";
        }
        if (r->hop) {
            p = bench_up_put(p, sep, strlen(sep));
            p = BENCH_UP_PUT_LIT(p, "X-Hop");
        }
        p = BENCH_UP_PUT_LIT(p, "\r\n");
    }
    if (r->hop)
        p = BENCH_UP_PUT_LIT(p, "X-Hop: secret\r\n"
                                "Keep-Alive: timeout=5\r\n"
                                "Upgrade: foo\r\n"
                                "Proxy-Connection: keep-alive\r\n"
                                "Trailer: X-T\r\n"
                                "X-E2E: kept\r\n");
    p = BENCH_UP_PUT_LIT(p, "\r\n");
    c->out.len += (size_t)(p - start);
}

/* Copies `n` body bytes (from mem or the pattern) to the output. */
static void
bench_up_resp_copy(struct bench_up_conn *c, size_t n)
{
    struct bench_up_resp *r = &c->resp;
    const char *src = r->mem != NULL ? r->mem + r->sent : c->w->pattern + r->sent % 26;

    memcpy(c->out.p + c->out.len, src, n);
    c->out.len += n;
    r->sent += n;
    r->left -= n;
}

/*
 * Produces as much of the current response as the output has room for. Returns DONE when all of
 * it is queued, FLUSH when the output is full, WAIT when a timer must pass first.
 */
static enum bench_up_step
bench_up_resp_fill(struct bench_up_conn *c)
{
    struct bench_up_resp *r = &c->resp;
    struct bench_up_buf *o = &c->out;

    if (r->waiting)
        return BENCH_UP_STEP_WAIT;
    if (r->head_pending) {
        if (o->cap - o->len < BENCH_UP_HEAD_ROOM)
            return BENCH_UP_STEP_FLUSH;
        bench_up_resp_head(c);
        r->head_pending = 0;
    }
    while (r->left > 0) {
        size_t room = o->cap - o->len, n;
        if (r->pause_pending && r->sent == r->pause_at) {
            r->pause_pending = 0;
            bench_up_resp_wait(c, r->pause_ms);
            if (r->waiting)
                return BENCH_UP_STEP_WAIT;
        }
        n = (size_t)XF_MIN(r->left, (uint64_t)BENCH_UP_OUT_CAP);
        if (r->pause_pending)
            n = (size_t)XF_MIN((uint64_t)n, r->pause_at - r->sent);
        if (r->framing == BENCH_UP_FRAME_CHUNKED) {
            char *p;
            /* Whole chunks of up to 16 KiB: hex size, CRLF, data, CRLF. */
            n = XF_MIN(n, (size_t)BENCH_UP_CHUNK_MAX);
            if (room < n + 16)
                return BENCH_UP_STEP_FLUSH;
            p = bench_up_put_hex(o->p + o->len, n);
            p = BENCH_UP_PUT_LIT(p, "\r\n");
            o->len = (size_t)(p - o->p);
            bench_up_resp_copy(c, n);
            memcpy(o->p + o->len, "\r\n", 2);
            o->len += 2;
        } else {
            n = XF_MIN(n, room);
            if (n == 0)
                return BENCH_UP_STEP_FLUSH;
            bench_up_resp_copy(c, n);
        }
    }
    if (r->final_chunk) {
        if (o->cap - o->len < 5)
            return BENCH_UP_STEP_FLUSH;
        memcpy(o->p + o->len, "0\r\n\r\n", 5);
        o->len += 5;
        r->final_chunk = 0;
    }
    return BENCH_UP_STEP_DONE;
}

/* After a pause: copy /echo's head, or answer the complete request. */
static void
bench_up_http_paused(struct bench_up_conn *c)
{
    struct bench_up_req *q = &c->req;

    if (q->echo_head) {
        size_t hlen = c->parse_off - q->head_start;
        uint64_t want = XF_MIN(c->parser.content_length, (uint64_t)BENCH_UP_ECHO_MAX);
        q->echo_head = 0;
        q->head_open = 0;
        c->parse_more = 1;
        if (bench_up_echo_reserve(q, hlen + (size_t)want) == -1) {
            bench_up_http_reject(c, 500);
            return;
        }
        memcpy(q->echo, c->in.p + q->head_start, hlen);
        q->echo_len = q->echo_head_len = hlen;
    }
    if (q->complete) {
        q->complete = 0;
        bench_up_resp_begin(c);
    }
}

enum bench_up_step
bench_up_http_produce(struct bench_up_conn *c)
{
    for (;;) {
        llhttp_errno_t e;

        if (c->resp.active) {
            enum bench_up_step st = bench_up_resp_fill(c);
            if (st != BENCH_UP_STEP_DONE)
                return st;
            c->resp.active = 0;
            if (c->resp.close_after)
                c->closing = 1;
        }
        if (c->closing || c->parse_dead) {
            c->closing = 1;
            return BENCH_UP_STEP_CLOSE;
        }
        if (c->out.cap - c->out.len < BENCH_UP_HEAD_ROOM)
            return BENCH_UP_STEP_FLUSH;
        if (c->parse_off == c->in.len && !c->parse_more) {
            if (!c->rd_eof)
                return BENCH_UP_STEP_INPUT;
            c->closing = 1;
            return BENCH_UP_STEP_CLOSE;
        }
        c->parse_more = 0;
        e = llhttp_execute(&c->parser, c->in.p + c->parse_off, c->in.len - c->parse_off);
        if (e == HPE_OK) {
            c->parse_off = c->in.len;
        } else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            c->parse_off = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.p);
            if (e == HPE_PAUSED)
                llhttp_resume(&c->parser);
            else
                c->closing = 1; /* nothing after an upgrade is HTTP; answered below, then closed */
            bench_up_http_paused(c);
        } else {
            bench_up_http_reject(c, 400);
        }
    }
}
