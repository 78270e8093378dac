/* Allocation wrappers, string views and integer formatting. */
#include "tp0/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size)
{
    /* Nothing sensible can continue without memory; say so and stop. */
    fprintf(stderr, "out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len + 1);
    return p;
}

bool str_eq(struct str a, const char *cstr)
{
    size_t len = strlen(cstr);
    return a.len == len && (len == 0 || memcmp(a.ptr, cstr, len) == 0);
}

bool str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s.len > 0 && s.ptr[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.len) {
        return false;
    }
    if (s.len - i <= 18) {
        /* Fast path for the common short number: 18 digits stay below
         * 10^18 < INT64_MAX, so no per-digit overflow check is needed. */
        uint64_t u = 0;
        for (; i < s.len; i++) {
            unsigned d = (unsigned)(unsigned char)s.ptr[i] - '0';
            if (d > 9) {
                return false;
            }
            u = u * 10 + d;
        }
        int64_t sv = neg ? -(int64_t)u : (int64_t)u;
        if (sv < min || sv > max) {
            return false;
        }
        *out = sv;
        return true;
    }
    /* Accumulate as a negative number so INT64_MIN is representable. */
    int64_t v = 0;
    for (; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        int d = c - '0';
        if (v < (INT64_MIN + d) / 10) {
            return false;
        }
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN) {
            return false;
        }
        v = -v;
    }
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

size_t fmt_i64(char *dst, int64_t v)
{
    char tmp[I64_DEC_MAX];
    size_t n = 0;
    /* Work with the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t len = 0;
    if (v < 0) {
        dst[len++] = '-';
    }
    while (n > 0) {
        dst[len++] = tmp[--n];
    }
    return len;
}

size_t i64_dec_len(int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t len = v < 0 ? 2 : 1;
    while (u >= 10) {
        u /= 10;
        len++;
    }
    return len;
}

size_t utf8_sequence_len(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    uint32_t min;
    if (c < 0x80) {
        return 1;
    }
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
        return 0; /* a continuation byte out of place, 0xc0/0xc1 (always overlong), or > 0xf4 */
    }
    if (left - 1 < n) {
        return 0; /* truncated */
    }
    for (size_t k = 1; k <= n; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0; /* overlong, beyond Unicode, or a UTF-16 surrogate */
    }
    return n + 1;
}
