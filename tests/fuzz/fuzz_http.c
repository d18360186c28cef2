/* tests/fuzz/fuzz_http.c -- the fuzz harnesses' strict HTTP reader: a separate llhttp instance with
 * its own callbacks and no lenient flag, every span copied into the message it belongs to. */
#include "tests/fuzz/fuzz_http.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

/* Appends len bytes to a growing NUL-terminated buffer. */
static void
fz_http_append(char **buf, size_t *n, const char *at, size_t len)
{
    char *p = realloc(*buf, *n + len + 1);

    FZ_CHECK(p != NULL, "out of memory");
    memcpy(p + *n, at, len);
    *n += len;
    p[*n] = '\0';
    *buf = p;
}

static struct fz_http_msg *
fz_http_cur(llhttp_t *p)
{
    struct fz_http *h = p->data;

    return &h->msgs[h->n_msgs - 1];
}

static int
fz_http_on_begin(llhttp_t *p)
{
    struct fz_http *h = p->data;

    if (h->n_msgs == FZ_HTTP_MSGS)
        return -1; /* more than a run compares: the stream stops here */
    memset(&h->msgs[h->n_msgs++], 0, sizeof(h->msgs[0]));
    h->in_value = false;
    return 0;
}

static int
fz_http_on_url(llhttp_t *p, const char *at, size_t len)
{
    struct fz_http_msg *m = fz_http_cur(p);

    fz_http_append(&m->url, &m->url_len, at, len);
    return 0;
}

/* Header spans after the head are trailer fields: not part of the compared head. */
static bool
fz_http_in_head(llhttp_t *p)
{
    struct fz_http_msg *m = fz_http_cur(p);

    return !m->head_done && !m->too_many_hdrs;
}

static int
fz_http_on_field(llhttp_t *p, const char *at, size_t len)
{
    struct fz_http *h = p->data;
    struct fz_http_msg *m = fz_http_cur(p);

    if (!fz_http_in_head(p))
        return 0;
    if (m->n_hdrs == 0 || h->in_value) {
        if (m->n_hdrs == FZ_HTTP_HDRS) {
            m->too_many_hdrs = true;
            return 0;
        }
        m->n_hdrs++;
        h->in_value = false;
    }
    fz_http_append(&m->hdrs[m->n_hdrs - 1].name, &m->hdrs[m->n_hdrs - 1].name_len, at, len);
    return 0;
}

static int
fz_http_on_value(llhttp_t *p, const char *at, size_t len)
{
    struct fz_http *h = p->data;
    struct fz_http_msg *m = fz_http_cur(p);

    if (!fz_http_in_head(p) || m->n_hdrs == 0)
        return 0;
    h->in_value = true;
    fz_http_append(&m->hdrs[m->n_hdrs - 1].value, &m->hdrs[m->n_hdrs - 1].value_len, at, len);
    return 0;
}

static int
fz_http_on_value_complete(llhttp_t *p)
{
    struct fz_http *h = p->data;
    struct fz_http_msg *m = fz_http_cur(p);

    /* An empty value has no span: the field still ends here, with "" as its value. */
    if (fz_http_in_head(p) && m->n_hdrs > 0 && m->hdrs[m->n_hdrs - 1].value == NULL)
        fz_http_append(&m->hdrs[m->n_hdrs - 1].value, &m->hdrs[m->n_hdrs - 1].value_len, "", 0);
    h->in_value = true;
    return 0;
}

static int
fz_http_on_headers_complete(llhttp_t *p)
{
    struct fz_http *h = p->data;
    struct fz_http_msg *m = fz_http_cur(p);
    size_t finals = 0;

    m->head_done = true;
    m->method = p->method;
    m->status = p->status_code;
    m->major = p->http_major;
    m->minor = p->http_minor;
    if (m->url == NULL)
        fz_http_append(&m->url, &m->url_len, "", 0);
    /* A 101 agreed to ends at its head (RFC 9112 6.3: no 1xx has content), whatever its framing
     * fields say: llhttp would read a Content-Length body first. */
    if (p->type == HTTP_RESPONSE && m->status == 101 && h->stop_upgrade)
        return 2;
    if (p->type != HTTP_RESPONSE || h->is_head == NULL)
        return 0;
    /* The final response i answers request i; 1xx ones answer none. */
    for (size_t i = 0; i + 1 < h->n_msgs; i++)
        if (h->msgs[i].status >= 200)
            finals++;
    return m->status >= 200 && h->is_head(h->is_head_arg, finals) ? 1 : 0;
}

static int
fz_http_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct fz_http_msg *m = fz_http_cur(p);

    fz_http_append(&m->body, &m->body_len, at, len);
    return 0;
}

static int
fz_http_on_complete(llhttp_t *p)
{
    fz_http_cur(p)->complete = true;
    return 0;
}

void
fz_http_init(struct fz_http *h, llhttp_type_t type)
{
    memset(h, 0, sizeof(*h));
    llhttp_settings_init(&h->settings);
    h->settings.on_message_begin = fz_http_on_begin;
    h->settings.on_url = fz_http_on_url;
    h->settings.on_header_field = fz_http_on_field;
    h->settings.on_header_value = fz_http_on_value;
    h->settings.on_header_value_complete = fz_http_on_value_complete;
    h->settings.on_headers_complete = fz_http_on_headers_complete;
    h->settings.on_body = fz_http_on_body;
    h->settings.on_message_complete = fz_http_on_complete;
    llhttp_init(&h->parser, type, &h->settings);
    h->parser.data = h;
}

bool
fz_http_feed(struct fz_http *h, const char *data, size_t len)
{
    while (!h->error && !h->upgraded && len > 0) {
        llhttp_errno_t err = llhttp_execute(&h->parser, data, len);
        size_t used;

        if (err == HPE_OK) {
            h->fed += len;
            return true;
        }
        if (err != HPE_PAUSED_UPGRADE) {
            h->error = true;
            h->reason = llhttp_get_error_reason(&h->parser);
            break;
        }
        used = (size_t)(llhttp_get_error_pos(&h->parser) - data);
        h->fed += used;
        data += used;
        len -= used;
        if (h->stop_upgrade) {
            h->upgraded = true;
            h->upgraded_at = h->fed;
            break;
        }
        /* An upgrade the other side never agreed to (the harness's node answers 200): the
         * connection goes on as HTTP. */
        llhttp_resume_after_upgrade(&h->parser);
    }
    h->fed += len;
    return !h->error;
}

size_t
fz_http_complete(const struct fz_http *h)
{
    size_t n = 0;

    while (n < h->n_msgs && h->msgs[n].complete)
        n++;
    return n;
}

void
fz_http_fini(struct fz_http *h)
{
    for (size_t i = 0; i < h->n_msgs; i++) {
        struct fz_http_msg *m = &h->msgs[i];

        free(m->url);
        free(m->body);
        for (size_t k = 0; k < m->n_hdrs; k++) {
            free(m->hdrs[k].name);
            free(m->hdrs[k].value);
        }
    }
    h->n_msgs = 0;
}
