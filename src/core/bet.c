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
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        uint32_t min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            /* Continuation byte out of place, 0xc0/0xc1 (always overlong), or > 0xf4. */
            return false;
        }
        if (len - i - 1 < n) {
            return false; /* truncated sequence */
        }
        for (size_t k = 1; k <= n; k++) {
            unsigned char cc = p[i + k];
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false; /* overlong, beyond Unicode, or a UTF-16 surrogate */
        }
        i += n + 1;
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
