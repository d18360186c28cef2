/* admin/adm_events.c -- the audit trail: a ring of the latest changes, who made them and when. */
#include "admin/adm.h"

#include <stdio.h>
#include <string.h>

void
adm_events_add(struct adm_events *ev, long uid, long pid, const char *command, const char *what,
               const char *old_value, const char *new_value)
{
    struct adm_event *e = &ev->ring[ev->next];

    e->seq = ++ev->seq;
    e->time = time(NULL);
    e->uid = uid;
    e->pid = pid;
    snprintf(e->command, sizeof(e->command), "%s", command);
    snprintf(e->what, sizeof(e->what), "%s", what);
    snprintf(e->old_value, sizeof(e->old_value), "%s", old_value);
    snprintf(e->new_value, sizeof(e->new_value), "%s", new_value);
    ev->next = (ev->next + 1) % ADM_EVENTS_MAX;
    if (ev->n < ADM_EVENTS_MAX)
        ev->n++;
}

const struct adm_event *
adm_events_get(const struct adm_events *ev, size_t i)
{
    if (i >= ev->n)
        return NULL;
    return &ev->ring[(ev->next + ADM_EVENTS_MAX - ev->n + i) % ADM_EVENTS_MAX];
}
