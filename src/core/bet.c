/* The bet model's batch array and field validation. */
#include "tp0/bet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bet_batch_init(struct bet_batch *b)
{
    b->bets = NULL;
    b->count = 0;
    b->cap = 0;
}

void bet_batch_free(struct bet_batch *b)
{
    free(b->bets);
    bet_batch_init(b);
}

struct bet *bet_batch_push(struct bet_batch *b)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(*b->bets)) {
            fprintf(stderr, "bet batch too large\n");
            abort();
        }
        b->bets = xrealloc(b->bets, cap * sizeof(*b->bets));
        b->cap = cap;
    }
    return &b->bets[b->count++];
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = p[i] < 0x80 ? 1 : utf8_sequence_len(p + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

bool date_valid(struct str date)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (date.len != 10 || date.ptr[4] != '-' || date.ptr[7] != '-') {
        return false;
    }
    if (!digits(date.ptr, 4, &y) || !digits(date.ptr + 5, 2, &m) || !digits(date.ptr + 8, 2, &d)) {
        return false;
    }
    if (m < 1 || m > 12 || d < 1) {
        return false;
    }
    int last = mdays[m - 1] + (m == 2 && is_leap(y) ? 1 : 0);
    return d <= last;
}

/* Shows at most this many bytes of a rejected value in a reason. */
#define SHOW_MAX 64

static bool name_valid(const char *field, struct str v, char *err, size_t errlen)
{
    int show = (int)(v.len < SHOW_MAX ? v.len : SHOW_MAX);
    if (v.len == 0) {
        snprintf(err, errlen, "%s is empty", field);
        return false;
    }
    if (v.len > BET_MAX_NAME) {
        snprintf(err, errlen, "%s '%.*s...' is longer than %d bytes", field, show, v.ptr,
                 BET_MAX_NAME);
        return false;
    }
    bool ascii = true;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "%s '%.*s' contains the control character 0x%02x at byte %zu",
                     field, show, v.ptr, c, i);
            return false;
        }
        ascii &= c < 0x80;
    }
    /* Most names are plain ASCII, which is valid UTF-8 by itself. */
    if (!ascii && !utf8_valid(v.ptr, v.len)) {
        snprintf(err, errlen, "%s '%.*s' is not valid UTF-8", field, show, v.ptr);
        return false;
    }
    return true;
}

bool bet_validate(const struct bet *bet, char *err, size_t errlen)
{
    if (bet->agency <= 0) {
        snprintf(err, errlen, "agency %d is not positive", (int)bet->agency);
        return false;
    }
    if (!name_valid("first_name", bet->first_name, err, errlen) ||
        !name_valid("last_name", bet->last_name, err, errlen)) {
        return false;
    }
    struct str doc = bet->document;
    int show = (int)(doc.len < SHOW_MAX ? doc.len : SHOW_MAX);
    bool all_digits = doc.len >= 1 && doc.len <= 10;
    for (size_t i = 0; all_digits && i < doc.len; i++) {
        all_digits = doc.ptr[i] >= '0' && doc.ptr[i] <= '9';
    }
    if (!all_digits) {
        snprintf(err, errlen, "document '%.*s' is not 1 to 10 decimal digits", show, doc.ptr);
        return false;
    }
    int64_t docval;
    if (!str_to_i64(doc, 0, INT32_MAX, &docval)) {
        snprintf(err, errlen, "document %.*s exceeds %d", show, doc.ptr, (int)INT32_MAX);
        return false;
    }
    struct str date = bet->birthdate;
    show = (int)(date.len < SHOW_MAX ? date.len : SHOW_MAX);
    if (!date_valid(date)) {
        snprintf(err, errlen, "birthdate %.*s is not a calendar date", show, date.ptr);
        return false;
    }
    /* date_valid guarantees the layout, so comparing the text orders the dates. */
    if (memcmp(date.ptr, "1900-01-01", 10) < 0 || memcmp(date.ptr, "2100-12-31", 10) > 0) {
        snprintf(err, errlen, "birthdate %.10s is outside 1900-01-01..2100-12-31", date.ptr);
        return false;
    }
    if (bet->number < 0) {
        snprintf(err, errlen, "number %d is negative", (int)bet->number);
        return false;
    }
    return true;
}
