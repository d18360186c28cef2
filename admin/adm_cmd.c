/* admin/adm_cmd.c -- the command table, running one command line, and building replies. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

/*
 * Every command, in the order help lists them. A new command is one entry here and one handler
 * (declared in adm.h); names of two words group under their first ("show ...", "ramp ..."); the
 * longest name that starts a line wins ("ramp pause" over "ramp").
 */
static const struct adm_cmd adm_cmds[] = {
    {"help", "help", "list the commands", 0, 0, 0, adm_cmd_help},
    {"show weight", "show weight", "the share of clients on x and on y, in percent", 0, 0, 0,
     adm_cmd_show_weight},
    {"set weight", "set weight P [at TIME] [force]",
     "send P percent of clients to y (0 to 100, two decimals; at TIME: then, on every instance of "
     "a "
     "fleet at once; force: past y's capacity)",
     1, 4, ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_set_weight},
    {"rollback", "rollback", "send every client to x at once (weight 0); cancels a ramp", 0, 0,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_rollback},
    {"promote", "promote [force]", "send every client to y (weight 100; force: past y's capacity)",
     0, 1, ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_promote},
    {"ramp", "ramp TO over DURATION [step P] [guarded] [force]",
     "move the weight to TO in even steps (default 1 point) over DURATION; pauses at y's capacity",
     1, 7, ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_ramp},
    {"ramp pause", "ramp pause", "hold the ramp at its current step", 0, 0,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_ramp_pause},
    {"ramp resume", "ramp resume", "go on with a paused ramp at the same pace", 0, 0,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_ramp_resume},
    {"ramp cancel", "ramp cancel", "stop the ramp where it is", 0, 0,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_ramp_cancel},
    {"show ramp", "show ramp", "the ramp's progress, its next step and when", 0, 0, 0,
     adm_cmd_show_ramp},
    {"pin", "pin KEY x|y", "send a split key to x or to y whatever the weight", 2, ADM_MAX_ARGS,
     ADM_CMD_RAW_ARGS | ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_pin},
    {"unpin", "unpin KEY", "let a pinned key follow the weight again", 1, ADM_MAX_ARGS,
     ADM_CMD_RAW_ARGS | ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_unpin},
    {"show pins", "show pins", "the pinned keys and their side", 0, 0, 0, adm_cmd_show_pins},
    {"show nodes", "show nodes",
     "each node: weight, state, requests in flight, idle connections, last check, ejections", 0, 0,
     0, adm_cmd_show_nodes},
    {"show tunnels", "show tunnels",
     "tunnels open (WebSocket and other upgrades) per node, and per cluster", 0, 0, 0,
     adm_cmd_show_tunnels},
    {"add node", "add node CLUSTER ADDRESS [weight W]", "add a node to x or y (weight 0 to 1000)",
     2, 4, ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_add_node},
    {"set node", "set node CLUSTER/ADDRESS weight W", "change a node's weight (0 to 1000)", 3, 3,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_set_node},
    {"drain node", "drain node CLUSTER/ADDRESS",
     "stop new requests to the node; idle pooled connections close", 1, 1,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_drain_node},
    {"enable node", "enable node CLUSTER/ADDRESS", "let a drained node take requests again", 1, 1,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_enable_node},
    {"del node", "del node CLUSTER/ADDRESS [force]",
     "remove a node (force: even the last one of its cluster)", 1, 2,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_del_node},
    {"freeze", "freeze on|off|show",
     "the upgrade freeze: 423 for writes through admin_api listeners", 1, 1,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_freeze},
    {"which", "which KEY", "where a key goes now: KIND:NAME=VALUE, ip=ADDRESS or a bare value", 1,
     ADM_MAX_ARGS, ADM_CMD_RAW_ARGS, adm_cmd_which},
    {"show stats", "show stats [json]",
     "per cluster: requests, responses, failures, latency, failovers, retries, health, queues, "
     "tunnels",
     0, 0, ADM_CMD_JSON, adm_cmd_show_stats},
    {"preview weight", "preview weight P",
     "what would move to the other side at weight P: recent keys and requests", 1, 1, 0,
     adm_cmd_preview_weight},
    {"guard", "guard on|off|show|reset",
     "the guard that judges y against x: start, stop, show its verdict, clear a trip", 1, 1,
     ADM_CMD_CHANGES | ADM_CMD_ROLLOUT, adm_cmd_guard},
    {"report", "report [json]",
     "the rollout so far: a segment per weight with x against y, the guard, every change", 0, 0,
     ADM_CMD_JSON, adm_cmd_report},
    {"show events", "show events", "the audit trail: time, uid, command, old -> new", 0, 0, 0,
     adm_cmd_show_events},
    {"show state", "show state", "the state file: what start-up found, the last write", 0, 0, 0,
     adm_cmd_show_state},
    {"show fleet", "show fleet",
     "fleet mode: etcd, the state's revision and writer, each instance's revision and epoch", 0, 0,
     0, adm_cmd_show_fleet},
    {"show config", "show config", "the settings crossfade started with", 0, 0, 0,
     adm_cmd_show_config},
    {"show version", "show version", "crossfade's version, pid and uptime", 0, 0, 0,
     adm_cmd_show_version},
    {"reload", "reload", "re-read the config file and apply it without dropping a connection", 0, 0,
     ADM_CMD_CHANGES, adm_cmd_reload},
    {"tls reload", "tls reload",
     "re-read the certificate and key files; a bad one keeps the old certificates in force", 0, 0,
     ADM_CMD_CHANGES, adm_cmd_tls_reload},
    {"show tls", "show tls", "each certificate: its listener, file, names, expiry and days left", 0,
     0, 0, adm_cmd_show_tls},
    {"reexec", "reexec",
     "binary upgrade: start the crossfade binary installed at this one's path and hand over to it "
     "without dropping a connection",
     0, 0, ADM_CMD_CHANGES, adm_cmd_reexec},
    {"watch", "watch",
     "stream the changes as they happen (weight, ramps, pins, freeze, nodes, health), one line "
     "each, until you disconnect",
     0, 0, 0, adm_cmd_watch},
    {"takeover", "takeover [done]",
     "for crossfade --takeover: hand the listening sockets and the state to a new process", 0, 1,
     ADM_CMD_CHANGES, adm_cmd_takeover},
    {"quit", "quit", "close this admin connection", 0, 0, 0, adm_cmd_quit},
};

const struct adm_cmd *
adm_cmd_table(size_t *n)
{
    *n = XF_ARRAY_LEN(adm_cmds);
    return adm_cmds;
}

/* The words of a command name (at most `max`); returns their number. */
static size_t
adm_cmd_words(const char *name, struct adm_span *w, size_t max)
{
    struct adm_args a;

    if (adm_args_split(name, strlen(name), &a) == -1)
        return 0;
    for (size_t i = 0; i < a.n && i < max; i++)
        w[i] = a.v[i];
    return a.n;
}

/* Whether two spans hold the same bytes, ASCII case ignored. */
static bool
adm_span_ieq(struct adm_span x, struct adm_span y)
{
    if (x.len != y.len)
        return false;
    for (size_t i = 0; i < x.len; i++) {
        char a = x.ptr[i], b = y.ptr[i];

        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/* Whether the line starts with the words of the command's name; *n_words gets their number. */
static bool
adm_cmd_matches(const struct adm_cmd *c, const struct adm_args *a, size_t *n_words)
{
    struct adm_span w[4];
    size_t n = adm_cmd_words(c->name, w, XF_ARRAY_LEN(w));

    if (n == 0 || n > XF_ARRAY_LEN(w) || n > a->n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!adm_span_ieq(w[i], a->v[i]))
            return false;
    *n_words = n;
    return true;
}

const struct adm_cmd *
adm_cmd_find(const struct adm_args *a)
{
    const struct adm_cmd *best = NULL;
    size_t best_words = 0;

    for (size_t i = 0; i < XF_ARRAY_LEN(adm_cmds); i++) {
        size_t n;

        if (adm_cmd_matches(&adm_cmds[i], a, &n) && n > best_words) {
            best = &adm_cmds[i];
            best_words = n;
        }
    }
    return best;
}

/* The first `n` words of the line joined by one space, lower-cased, into buf (cut to fit). */
static const char *
adm_cmd_prefix(const struct adm_args *a, size_t n, char *buf, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < n && i < a->n; i++) {
        if (i > 0 && o + 1 < size)
            buf[o++] = ' ';
        for (size_t j = 0; j < a->v[i].len && o + 1 < size; j++) {
            char c = a->v[i].ptr[j];

            buf[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Appends `"usage"` to a list in buf, with `sep` before all but the first. */
static void
adm_cmd_list_add(char *buf, size_t size, size_t *o, const char *sep, const char *usage)
{
    int n = snprintf(buf + *o, size - *o, "%s\"%s\"", *o > 0 ? sep : "", usage);

    if (n > 0)
        *o = XF_MIN(*o + (size_t)n, size - 1);
}

enum adm_result
adm_cmd_unknown(const struct adm_args *a, struct adm_reply *r)
{
    char typed[ADM_QUOTE_TEXT], hint[512], prefix[128];
    size_t dist[XF_ARRAY_LEN(adm_cmds)], best = SIZE_MAX, o = 0, n_hints = 0;
    struct adm_span first = a->v[0];

    adm_quote(a->line.ptr, a->line.len, typed, sizeof(typed));
    /* Compare what was typed with each name over as many words as the name has. */
    for (size_t i = 0; i < XF_ARRAY_LEN(adm_cmds); i++) {
        struct adm_span w[4];
        size_t n = adm_cmd_words(adm_cmds[i].name, w, XF_ARRAY_LEN(w));
        size_t limit = XF_MAX((size_t)2, strlen(adm_cmds[i].name) / 3);

        dist[i] = xf_edit_distance(adm_cmd_prefix(a, n, prefix, sizeof(prefix)), adm_cmds[i].name);
        if (dist[i] > limit)
            dist[i] = SIZE_MAX;
        best = XF_MIN(best, dist[i]);
    }
    hint[0] = '\0';
    for (size_t i = 0; best != SIZE_MAX && i < XF_ARRAY_LEN(adm_cmds) && n_hints < 3; i++) {
        if (dist[i] != best)
            continue;
        adm_cmd_list_add(hint, sizeof(hint), &o, " or ", adm_cmds[i].usage);
        n_hints++;
    }
    if (n_hints > 0)
        return adm_reply_error(r, "unknown command %s; did you mean %s?", typed, hint);
    /* "show" alone, or "show nonsense": list what may follow the first word. */
    for (size_t i = 0; i < XF_ARRAY_LEN(adm_cmds); i++) {
        struct adm_span w[4];

        if (adm_cmd_words(adm_cmds[i].name, w, XF_ARRAY_LEN(w)) < 2 || !adm_span_ieq(w[0], first))
            continue;
        adm_cmd_list_add(hint, sizeof(hint), &o, ", ", adm_cmds[i].usage);
        n_hints++;
    }
    if (n_hints > 0)
        return adm_reply_error(r, "unknown command %s; expected one of %s", typed, hint);
    return adm_reply_error(r, "unknown command %s; \"help\" lists the commands", typed);
}

/* Appends `len` bytes of one reply line to `buf`, control bytes escaped, then its LF. */
static void
adm_reply_append(struct evbuffer *buf, const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0) {
        evbuffer_add(buf, "-\n", 2); /* a reply never holds an empty line */
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != 0x7f)
            continue;
        evbuffer_add(buf, s + start, i - start);
        evbuffer_add_printf(buf, "\\x%02x", c);
        start = i + 1;
    }
    evbuffer_add(buf, s + start, len - start);
    evbuffer_add(buf, "\n", 1);
}

static void adm_reply_vline(struct evbuffer *buf, const char *prefix, const char *fmt, va_list ap)
    XF_PRINTF(3, 0);

static void
adm_reply_vline(struct evbuffer *buf, const char *prefix, const char *fmt, va_list ap)
{
    char stack[1024], *heap = NULL, *s = stack;
    size_t plen = strlen(prefix);
    va_list ap2;
    int n;

    memcpy(stack, prefix, plen);
    va_copy(ap2, ap);
    n = vsnprintf(stack + plen, sizeof(stack) - plen, fmt, ap);
    if (n < 0) {
        n = 0;
        stack[plen] = '\0';
    } else if ((size_t)n >= sizeof(stack) - plen) {
        heap = malloc(plen + (size_t)n + 1);
        if (heap != NULL) {
            memcpy(heap, prefix, plen);
            vsnprintf(heap + plen, (size_t)n + 1, fmt, ap2);
            s = heap;
        } else {
            n = (int)(sizeof(stack) - plen - 1); /* out of memory: the line is cut */
        }
    }
    va_end(ap2);
    adm_reply_append(buf, s, plen + (size_t)n);
    free(heap);
}

void
adm_reply_line(struct adm_reply *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_reply_vline(r->buf, "", fmt, ap);
    va_end(ap);
}

enum adm_result
adm_reply_error(struct adm_reply *r, const char *fmt, ...)
{
    va_list ap;

    evbuffer_drain(r->buf, evbuffer_get_length(r->buf));
    va_start(ap, fmt);
    adm_reply_vline(r->buf, "error: ", fmt, ap);
    va_end(ap);
    r->failed = true;
    return ADM_ERROR;
}

void
adm_write_error(struct evbuffer *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    adm_reply_vline(out, "error: ", fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\n", 1);
}

/* Whether the last word is "json" (xfctl -j). */
static bool
adm_wants_json(const struct adm_args *a, size_t n_words)
{
    return a->n > n_words && adm_span_is(a->v[a->n - 1], "json");
}

/* The command of a line that holds text, if it names one with as many words as it takes:
 * ADM_OK and *cmd, or an error reply in r. */
static enum adm_result
adm_resolve(const struct adm_args *a, struct adm_reply *r, const struct adm_cmd **cmd)
{
    const struct adm_cmd *c = adm_cmd_find(a);
    size_t n_words, n_args;

    if (c == NULL)
        return adm_cmd_unknown(a, r);
    adm_cmd_matches(c, a, &n_words);
    n_args = a->n - n_words;
    if (adm_wants_json(a, n_words) && !(c->flags & ADM_CMD_RAW_ARGS)) {
        if (!(c->flags & ADM_CMD_JSON))
            return adm_reply_error(r, "\"%s\" has no JSON form", c->name);
        n_args--;
    }
    if (n_args < c->min_args || n_args > c->max_args)
        return adm_reply_error(r, "usage: %s", c->usage);
    *cmd = c;
    return ADM_OK;
}

/* Runs the command of a line that holds text; the reply goes to r. */
static enum adm_result
adm_dispatch(struct adm_state *st, const struct adm_peer *peer, const struct adm_args *a,
             struct adm_reply *r)
{
    const struct adm_cmd *c = NULL;
    enum adm_result res = adm_resolve(a, r, &c);

    if (res != ADM_OK)
        return res;
    /* Between the state handed to a new process and its taking over, a change made here would
     * be lost with this process: refused (adm_takeover.c). `takeover done` itself goes on. */
    if ((c->flags & ADM_CMD_CHANGES) && st->handover && c->fn != adm_cmd_takeover &&
        !(c->fn == adm_cmd_freeze && adm_span_is(a->v[a->n - 1], "show")))
        return adm_reply_error(r,
                               "a binary upgrade is under way: this process handed its state to "
                               "crossfade pid %ld, which takes over in a moment; run the command "
                               "again then",
                               st->handover_pid);
    /* Fleet mode: a change of the rollout needs etcd, and its reply waits for etcd's answer. */
    if ((c->flags & ADM_CMD_ROLLOUT) && st->fleet != NULL &&
        !((c->fn == adm_cmd_freeze || c->fn == adm_cmd_guard) &&
          adm_span_is(a->v[a->n - 1], "show"))) {
        const char *why = adm_fleet_refuse(st, c->fn == adm_cmd_rollback);

        if (why != NULL)
            return adm_reply_error(r, "%s", why);
        st->fleet_gen = adm_fleet_begin(st);
    }
    return c->fn(st, peer, a, r);
}

/* The checks of adm_exec that come before a command runs; the reply's error goes to r. */
static enum adm_result
adm_precheck(const char *line, size_t len, struct adm_args *a, struct adm_reply *r)
{
    long bad = adm_line_bad_byte(line, len);

    if (bad >= 0)
        return adm_reply_error(r,
                               "the line holds the control byte 0x%02x at byte %ld; commands "
                               "are text",
                               (unsigned char)line[bad], bad + 1);
    if (adm_args_split(line, len, a) == -1)
        return adm_reply_error(r, "too many words (more than %d)", ADM_MAX_ARGS);
    return a->n == 0 ? ADM_SILENT : ADM_OK;
}

int
adm_cmd_check(const char *line, size_t len, char *why, size_t size)
{
    struct adm_reply r = {evbuffer_new(), false};
    const struct adm_cmd *c;
    struct adm_args a;
    enum adm_result res;
    size_t n;

    if (r.buf == NULL) {
        snprintf(why, size, "out of memory");
        return -1;
    }
    res = adm_precheck(line, len, &a, &r);
    if (res == ADM_SILENT)
        res = adm_reply_error(&r, "no command");
    else if (res == ADM_OK)
        res = adm_resolve(&a, &r, &c);
    if (res == ADM_OK) {
        evbuffer_free(r.buf);
        return 0;
    }
    /* "error: TEXT\n" -> TEXT */
    evbuffer_drain(r.buf, XF_MIN(evbuffer_get_length(r.buf), sizeof("error: ") - 1));
    n = evbuffer_remove(r.buf, why, size > 0 ? size - 1 : 0) > 0 ? strcspn(why, "\n") : 0;
    if (size > 0)
        why[XF_MIN(n, size - 1)] = '\0';
    evbuffer_free(r.buf);
    return -1;
}

enum adm_result
adm_exec(struct adm_state *st, const struct adm_peer *peer, const char *line, size_t len,
         struct evbuffer *out)
{
    struct adm_reply r = {st->reply, false};
    struct adm_args a;
    enum adm_result res;

    evbuffer_drain(st->reply, evbuffer_get_length(st->reply));
    st->exec_gen = 0;
    st->fleet_gen = 0;
    res = adm_precheck(line, len, &a, &r);
    if (res == ADM_SILENT)
        return ADM_SILENT;
    if (res == ADM_OK)
        res = adm_dispatch(st, peer, &a, &r);
    if (res == ADM_PENDING || res == ADM_TAKEOVER)
        return res; /* its reply comes through st->job_done, or the server sends it */
    if (res == ADM_MORE) {
        /* The first part goes out now; the rest, and the closing empty line, later. */
        evbuffer_add_buffer(out, st->reply);
        return res;
    }
    if (r.failed)
        res = ADM_ERROR;
    adm_state_changed(st); /* what the command changed goes to the state file, once */
    if (evbuffer_get_length(st->reply) == 0)
        evbuffer_add(st->reply, "ok\n", 3); /* a reply has at least one line */
    evbuffer_add_buffer(out, st->reply);
    if (res != ADM_WATCH)
        evbuffer_add(out, "\n", 1); /* the reply's end; a watch's lines go on */
    return res;
}
