#include "lottery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp0/storage.h"

static bool in_range(const struct lottery *l, int32_t agency)
{
    return agency >= 1 && agency <= l->agencies;
}

void lottery_init(struct lottery *l, int32_t agencies)
{
    size_t n = (size_t)agencies + 1;

    memset(l, 0, sizeof(*l));
    l->agencies = agencies;
    l->finished = xcalloc(n, sizeof(*l->finished));
    l->parked = xcalloc(n, sizeof(*l->parked));
    l->winners = xcalloc(n, sizeof(*l->winners));
}

static void winners_clear(struct lottery_winners *w)
{
    for (size_t i = 0; i < w->count; i++)
        free(w->docs[i]);
    free(w->docs);
    free(w->views);
    memset(w, 0, sizeof(*w));
}

void lottery_free(struct lottery *l)
{
    if (l->winners != NULL) {
        for (int32_t a = 0; a <= l->agencies; a++)
            winners_clear(&l->winners[a]);
    }
    free(l->winners);
    free(l->parked);
    free(l->finished);
    memset(l, 0, sizeof(*l));
}

bool lottery_accepts_bets(const struct lottery *l, int32_t agency, char *err, size_t errlen)
{
    if (!in_range(l, agency)) {
        snprintf(err, errlen, "agency %ld is out of range 1..%ld", (long)agency, (long)l->agencies);
        return false;
    }
    if (l->drawn) {
        snprintf(err, errlen, "raffle already done");
        return false;
    }
    if (l->finished[agency]) {
        snprintf(err, errlen, "agency %ld already finished", (long)agency);
        return false;
    }
    return true;
}

enum lottery_finish lottery_finish(struct lottery *l, int32_t agency, void *conn, char *err,
                                   size_t errlen)
{
    if (!in_range(l, agency)) {
        snprintf(err, errlen, "agency %ld is out of range 1..%ld", (long)agency, (long)l->agencies);
        return LOTTERY_BAD_AGENCY;
    }
    if (l->drawn)
        return LOTTERY_ANSWER_NOW;
    if (l->finished[agency]) {
        if (l->parked[agency] != NULL) {
            snprintf(err, errlen, "agency %ld already finished", (long)agency);
            return LOTTERY_DUPLICATE;
        }
        /* Its first connection went away before the draw: this one waits instead. */
        l->parked[agency] = conn;
        return LOTTERY_PARKED;
    }
    l->finished[agency] = true;
    l->finished_count++;
    l->parked[agency] = conn;
    return l->finished_count == l->agencies ? LOTTERY_DRAW_NOW : LOTTERY_PARKED;
}

void *lottery_parked(const struct lottery *l, int32_t agency)
{
    return in_range(l, agency) ? l->parked[agency] : NULL;
}

bool lottery_unpark(struct lottery *l, int32_t agency, const void *conn)
{
    if (!in_range(l, agency) || l->parked[agency] == NULL || l->parked[agency] != conn)
        return false;
    l->parked[agency] = NULL;
    return true;
}

void *lottery_take_parked(struct lottery *l, int32_t agency)
{
    void *conn;

    if (!in_range(l, agency))
        return NULL;
    conn = l->parked[agency];
    l->parked[agency] = NULL;
    return conn;
}

void lottery_consider(struct lottery *l, const struct bet *bet)
{
    struct lottery_winners *w;
    char *doc;

    if (!has_won(bet))
        return;
    if (!in_range(l, bet->agency)) {
        /* A row from a run with more agencies: nobody can claim it. */
        l->ignored_bets++;
        return;
    }
    w = &l->winners[bet->agency];
    if (w->count == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 8;
        w->docs = xrealloc(w->docs, w->cap * sizeof(*w->docs));
    }
    doc = xmalloc(bet->document.len + 1);
    memcpy(doc, bet->document.ptr, bet->document.len);
    doc[bet->document.len] = '\0';
    w->docs[w->count++] = doc;
}

void lottery_mark_drawn(struct lottery *l)
{
    /* The views are built once the arrays stop growing. */
    for (int32_t a = 1; a <= l->agencies; a++) {
        struct lottery_winners *w = &l->winners[a];

        free(w->views);
        w->views = NULL;
        if (w->count == 0)
            continue;
        w->views = xcalloc(w->count, sizeof(*w->views));
        for (size_t i = 0; i < w->count; i++)
            w->views[i] = str_make(w->docs[i], strlen(w->docs[i]));
    }
    l->drawn = true;
}

static int draw_visit(void *ctx, const struct bet *bet)
{
    lottery_consider(ctx, bet);
    return 0;
}

int lottery_draw(struct lottery *l, const char *storage_path, char *err, size_t errlen)
{
    if (l->drawn) {
        snprintf(err, errlen, "raffle already done");
        return -1;
    }
    if (load_bets(storage_path, draw_visit, l, err, errlen) != 0) {
        for (int32_t a = 0; a <= l->agencies; a++)
            winners_clear(&l->winners[a]);
        l->ignored_bets = 0;
        return -1;
    }
    lottery_mark_drawn(l);
    return 0;
}

const struct lottery_winners *lottery_winners(const struct lottery *l, int32_t agency)
{
    if (!l->drawn || !in_range(l, agency))
        return NULL;
    return &l->winners[agency];
}
