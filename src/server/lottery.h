/*
 * The raffle's state machine, with no libevent and no sockets: which agencies
 * have finished, which connection (an opaque pointer) waits for each one, the
 * single draw, and each agency's winners. The server glue asks it what to do
 * and sends the frames itself, so this file is unit-tested on its own.
 *
 * Agencies are numbered 1..agencies. Before the draw, each agency may finish
 * once and parks one connection (if that connection goes away, a new FINISHED
 * from the agency parks the new one); the draw happens once, after the last
 * agency finished. After it, any agency may ask for its winners at once.
 */
#ifndef TP0_SERVER_LOTTERY_H
#define TP0_SERVER_LOTTERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/bet.h"
#include "tp0/util.h"

/* One agency's winners: documents copied out of the storage file. */
struct lottery_winners {
    char **docs;       /* owned, NUL-terminated */
    struct str *views; /* views of docs, ready for proto_encode_winners */
    size_t count;
    size_t cap;
};

struct lottery {
    int32_t agencies;
    int32_t finished_count;
    bool drawn;
    bool *finished;                  /* [agencies + 1], index 0 unused */
    void **parked;                   /* [agencies + 1]: who waits for the draw */
    struct lottery_winners *winners; /* [agencies + 1], filled by the draw */
    uint64_t ignored_bets;           /* stored bets of agencies out of range */
};

enum lottery_finish {
    LOTTERY_BAD_AGENCY, /* not in 1..agencies: err says why */
    LOTTERY_DUPLICATE,  /* another connection already waits for this agency: err says why */
    LOTTERY_PARKED,     /* recorded; the connection waits for the draw */
    LOTTERY_DRAW_NOW,   /* recorded and parked; it was the last one: call lottery_draw */
    LOTTERY_ANSWER_NOW, /* the draw is done: answer with lottery_winners() at once */
};

/* agencies must be >= 1. */
void lottery_init(struct lottery *l, int32_t agencies);
void lottery_free(struct lottery *l);

/* Whether a bet of this agency may still be accepted; if not, err says why
 * (out of range, agency already finished, raffle already done). */
bool lottery_accepts_bets(const struct lottery *l, int32_t agency, char *err, size_t errlen);

/* A FINISHED from `agency` on connection `conn` (not NULL). */
enum lottery_finish lottery_finish(struct lottery *l, int32_t agency, void *conn, char *err,
                                   size_t errlen);

/* The parked connection of an agency, or NULL. */
void *lottery_parked(const struct lottery *l, int32_t agency);

/* Forgets a parked connection (it went away); the agency stays finished.
 * Returns true if conn was parked for that agency. */
bool lottery_unpark(struct lottery *l, int32_t agency, const void *conn);

/* Returns and forgets the parked connection of an agency (NULL if none). */
void *lottery_take_parked(struct lottery *l, int32_t agency);

/*
 * The one raffle: streams the stored bets through has_won() and keeps each
 * agency's winning documents. Call once, after LOTTERY_DRAW_NOW and after the
 * storage is committed. Returns 0, or -1 with a reason (the lottery is then
 * left undrawn).
 */
int lottery_draw(struct lottery *l, const char *storage_path, char *err, size_t errlen);

/* Adds one stored bet to the draw (what lottery_draw does per row); exported
 * so tests can drive the draw without a file. */
void lottery_consider(struct lottery *l, const struct bet *bet);
/* Marks the draw done after feeding bets with lottery_consider. */
void lottery_mark_drawn(struct lottery *l);

/* An agency's winners, valid until lottery_free. Only after the draw. */
const struct lottery_winners *lottery_winners(const struct lottery *l, int32_t agency);

#endif
