/* The bet model, shared by server, client and storage, and its validation. */
#ifndef TP0_BET_H
#define TP0_BET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/util.h"

#define WINNING_NUMBER 7574

/*
 * One bet. The strings are views into bytes owned elsewhere (a received frame,
 * a CSV reader's buffer), so decoding a batch copies nothing per bet.
 * document is kept as the digits that arrived (it is an identifier, not a
 * quantity); number is an integer.
 */
struct bet {
    int32_t agency;
    struct str first_name;
    struct str last_name;
    struct str document;
    struct str birthdate; /* YYYY-MM-DD */
    int32_t number;
};

/* A reusable array of bets: grows to the largest batch seen, then stays. */
struct bet_batch {
    struct bet *bets;
    size_t count;
    size_t cap;
};

void bet_batch_init(struct bet_batch *b);
void bet_batch_free(struct bet_batch *b);
/* Returns a slot at the end (count grows by one); contents are uninitialised. */
struct bet *bet_batch_push(struct bet_batch *b);
static inline void bet_batch_clear(struct bet_batch *b)
{
    b->count = 0;
}

/*
 * Checks every field; on failure writes a reason naming the field and value
 * (e.g. "birthdate 2023-02-30 is not a calendar date") into err.
 * Rules: agency > 0; names non-empty, at most BET_MAX_NAME bytes, valid UTF-8,
 * no control characters (so no NUL, CR or LF); document: 1 to 10 decimal digits
 * whose value fits in int32; birthdate a real calendar date YYYY-MM-DD between
 * 1900-01-01 and 2100-12-31; number in [0, INT32_MAX].
 */
#define BET_MAX_NAME 256
bool bet_validate(const struct bet *bet, char *err, size_t errlen);

/* Lower-level checks, exported for reuse and tests. */
bool utf8_valid(const char *s, size_t len);
bool date_valid(struct str date); /* YYYY-MM-DD, real calendar date */

static inline bool bet_has_won(const struct bet *bet)
{
    return bet->number == WINNING_NUMBER;
}

#endif
