/* Helpers and oracles shared by the fuzz targets (see fuzz.h). */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"

bool fuzz_inside(const void *p, size_t len, const void *base, size_t base_len)
{
    if (len == 0) {
        return true;
    }
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return p != NULL && a >= b && a - b <= base_len && len <= base_len - (a - b);
}

static volatile unsigned fuzz_sink;

void fuzz_touch(struct str s)
{
    unsigned sum = 0;
    for (size_t i = 0; i < s.len; i++) {
        sum += (unsigned char)s.ptr[i];
    }
    fuzz_sink += sum;
}

size_t fuzz_errlen(uint8_t selector)
{
    static const size_t sizes[4] = {256, 40, 8, 1};
    return sizes[selector & 3];
}

void fuzz_check_err(const char *err, size_t errlen, bool failed)
{
    /* On success err is left as it was: nothing to check. */
    if (failed) {
        FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
        FUZZ_CHECK(errlen == 1 || err[0] != '\0');
    }
}

bool fuzz_str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void canon_str(struct buf *out, struct str s)
{
    buf_append_u32le(out, (uint32_t)s.len);
    if (s.len > 0) {
        buf_append(out, s.ptr, s.len);
    }
}

void fuzz_bet_canon(struct buf *out, const struct bet *bet)
{
    buf_append_u32le(out, (uint32_t)bet->agency);
    buf_append_u32le(out, (uint32_t)bet->number);
    canon_str(out, bet->first_name);
    canon_str(out, bet->last_name);
    canon_str(out, bet->document);
    canon_str(out, bet->birthdate);
}

bool fuzz_bet_eq(const struct bet *a, const struct bet *b)
{
    return a->agency == b->agency && a->number == b->number &&
           fuzz_str_eq(a->first_name, b->first_name) && fuzz_str_eq(a->last_name, b->last_name) &&
           fuzz_str_eq(a->document, b->document) && fuzz_str_eq(a->birthdate, b->birthdate);
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_oracle(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return len > 0;
}

static unsigned num(const char *s, size_t len)
{
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v;
}

/* YYYY-MM-DD, a real Gregorian date; *year gets the year. */
static bool date_oracle(struct str d, unsigned *year)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (d.len != 10 || d.ptr[4] != '-' || d.ptr[7] != '-' || !all_digits(d.ptr, 4) ||
        !all_digits(d.ptr + 5, 2) || !all_digits(d.ptr + 8, 2)) {
        return false;
    }
    unsigned y = num(d.ptr, 4), m = num(d.ptr + 5, 2), day = num(d.ptr + 8, 2);
    *year = y;
    if (m < 1 || m > 12 || day < 1) {
        return false;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return day <= days[m - 1] + (m == 2 && leap ? 1u : 0u);
}

/* Lenient: what any reading of "non-empty, at most BET_MAX_NAME bytes, valid
 * UTF-8, no control characters" requires. Strict: also no DEL and no C1
 * controls, so a name passing it must be accepted by every reading. */
static bool name_ok(struct str s, bool strict)
{
    if (s.len == 0 || s.len > BET_MAX_NAME || !utf8_oracle((const unsigned char *)s.ptr, s.len)) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20) {
            return false;
        }
        if (strict &&
            (c == 0x7F || (c == 0xC2 && i + 1 < s.len && (unsigned char)s.ptr[i + 1] >= 0x80 &&
                           (unsigned char)s.ptr[i + 1] <= 0x9F))) {
            return false;
        }
    }
    return true;
}

static bool document_ok(struct str s)
{
    if (s.len < 1 || s.len > 10 || !all_digits(s.ptr, s.len)) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    return v <= INT32_MAX;
}

bool fuzz_validate_bet(const struct bet *bet, size_t errlen)
{
    char err[256];
    memset(err, 'x', sizeof err);
    bool valid = bet_validate(bet, err, errlen);
    fuzz_check_err(err, errlen, !valid);

    unsigned year = 0;
    bool date = date_oracle(bet->birthdate, &year);
    /* date_valid() is only the calendar check; a year 0000 is left undecided. */
    if (year != 0 || !date) {
        FUZZ_CHECK(date_valid(bet->birthdate) == date);
    }
    FUZZ_CHECK(utf8_valid(bet->first_name.ptr, bet->first_name.len) ==
               utf8_oracle((const unsigned char *)bet->first_name.ptr, bet->first_name.len));
    FUZZ_CHECK(utf8_valid(bet->last_name.ptr, bet->last_name.len) ==
               utf8_oracle((const unsigned char *)bet->last_name.ptr, bet->last_name.len));

    bool common = bet->agency > 0 && bet->number >= 0 && document_ok(bet->document) && date &&
                  year >= 1900 && year <= 2100;
    if (valid) {
        FUZZ_CHECK(common && name_ok(bet->first_name, false) && name_ok(bet->last_name, false));
    } else {
        FUZZ_CHECK(!(common && name_ok(bet->first_name, true) && name_ok(bet->last_name, true)));
    }
    return valid;
}
