/* tests/fuzz/fuzz_http.h -- HTTP/1.1 messages as an independent strict parser reads them: its own
 * llhttp instance and settings, no lenient flag, every span copied. The request and response
 * harnesses compare what the proxy was given with what it passed on through it. */
#ifndef FUZZ_HTTP_H
#define FUZZ_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "llhttp.h"

#define FZ_HTTP_MSGS 32
#define FZ_HTTP_HDRS 64

struct fz_http_hdr {
    char *name, *value; /* owned, NUL-terminated (may hold NUL bytes: see the lengths) */
    size_t name_len, value_len;
};

struct fz_http_msg {
    int method, status, major, minor;
    char *url; /* owned */
    size_t url_len;
    struct fz_http_hdr hdrs[FZ_HTTP_HDRS];
    size_t n_hdrs;
    bool too_many_hdrs;
    bool head_done; /* the head is read: later fields are trailers */
    char *body;     /* owned */
    size_t body_len;
    bool complete;
};

/* A stream of messages read as they arrive (one per connection direction). */
struct fz_http {
    llhttp_t parser;
    llhttp_settings_t settings;
    struct fz_http_msg msgs[FZ_HTTP_MSGS];
    size_t n_msgs; /* begun; the last may be incomplete */
    bool in_value; /* the last span was a value: a field span starts a new header */
    bool error;    /* sticky */
    const char *reason;
    /* Set before feeding: an upgrade (a 101, or a request offering one) is agreed, and the
     * stream is the new protocol's from there on. */
    bool stop_upgrade;
    bool upgraded;      /* the stream switched protocols ... */
    size_t upgraded_at; /* ... at this offset: what follows is not HTTP */
    size_t fed;         /* bytes fed so far */
    /* For responses: whether the request the next response answers was a HEAD. */
    bool (*is_head)(void *arg, size_t i);
    void *is_head_arg;
};

void fz_http_init(struct fz_http *h, llhttp_type_t type);
/* Feeds bytes; an Upgrade pause is resumed (the harness's node never agrees to one) unless
 * stop_upgrade is set: then the rest is the new protocol's, not read. Returns false once the
 * stream is in error. */
bool fz_http_feed(struct fz_http *h, const char *data, size_t len);
/* The messages completed so far. */
size_t fz_http_complete(const struct fz_http *h);
void fz_http_fini(struct fz_http *h);

#endif
