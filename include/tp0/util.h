/* Small shared helpers: allocation that never returns NULL, string views. */
#ifndef TP0_UTIL_H
#define TP0_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation failure is not recoverable in these programs: abort with a message. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

/* A read-only view of bytes owned by someone else; not NUL-terminated. */
struct str {
    const char *ptr;
    size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})

static inline struct str str_make(const char *ptr, size_t len)
{
    return (struct str){ptr, len};
}

bool str_eq(struct str a, const char *cstr);

/* The length (1 to 4) of the well-formed UTF-8 sequence at p, which has `left`
 * bytes (left >= 1), or 0 when it is malformed: a stray continuation byte, an
 * overlong form, a surrogate, a code point above U+10FFFF, or truncated. */
size_t utf8_sequence_len(const unsigned char *p, size_t left);

/* Parses a base-10 integer in [min, max]; the whole view must be digits with an
 * optional leading '-'. Returns false on empty input, junk or overflow. */
bool str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out);

/* Longest decimal form of an int64_t ("-9223372036854775808"), without a NUL. */
#define I64_DEC_MAX 20
/* Writes v in decimal to dst (at least I64_DEC_MAX bytes, no NUL added) and
 * returns the length; a printf-free fast path for hot loops. */
size_t fmt_i64(char *dst, int64_t v);
/* The length fmt_i64 would write. */
size_t i64_dec_len(int64_t v);

#endif
