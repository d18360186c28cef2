/* admin/adm_events.c -- the audit trail: a ring of the latest changes, who made them and when. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

/* The slot the next event goes to, the ring moved on. */
static struct adm_event *
adm_events_slot(struct adm_events *ev)
{
    struct adm_event *e = &ev->ring[ev->next];

    ev->next = (ev->next + 1) % ADM_EVENTS_MAX;
    if (ev->n < ADM_EVENTS_MAX)
        ev->n++;
    return e;
}

void
adm_events_add(struct adm_events *ev, long uid, long pid, const char *command, const char *what,
               const char *old_value, const char *new_value)
{
    struct adm_event *e = adm_events_slot(ev);

    e->seq = ++ev->seq;
    e->time_ms = xf_wall_ms();
    e->uid = uid;
    e->pid = pid;
    snprintf(e->command, sizeof(e->command), "%s", command);
    snprintf(e->what, sizeof(e->what), "%s", what);
    snprintf(e->old_value, sizeof(e->old_value), "%s", old_value);
    snprintf(e->new_value, sizeof(e->new_value), "%s", new_value);
    if (ev->notify != NULL)
        ev->notify(ev->notify_arg, e);
}

void
adm_events_restore(struct adm_events *ev, const struct adm_event *e)
{
    *adm_events_slot(ev) = *e;
    if (e->seq > ev->seq)
        ev->seq = e->seq;
}

const struct adm_event *
adm_events_get(const struct adm_events *ev, size_t i)
{
    if (i >= ev->n)
        return NULL;
    return &ev->ring[(ev->next + ADM_EVENTS_MAX - ev->n + i) % ADM_EVENTS_MAX];
}

const char *
adm_event_line(const struct adm_event *e, bool ms, char *buf, size_t size)
{
    char when[40], seq[24], who[64];

    if (e->seq == 0)
        snprintf(seq, sizeof(seq), "-");
    else
        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)e->seq);
    if (e->uid < 0)
        snprintf(who, sizeof(who), "uid=- pid=-");
    else
        snprintf(who, sizeof(who), "uid=%ld pid=%ld", e->uid, e->pid);
    snprintf(buf, size, "#%s %s %s \"%s\" %s %s -> %s", seq,
             xf_wall_text(e->time_ms, ms, when, sizeof(when)), who, e->command, e->what,
             e->old_value, e->new_value);
    return buf;
}
