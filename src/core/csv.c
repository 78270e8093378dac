/* The streaming RFC 4180 reader and the QUOTE_MINIMAL writer. */
#include "tp0/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TP0_CSV_STR2(x) #x
#define TP0_CSV_STR(x)  TP0_CSV_STR2(x)

void csv_reader_init(struct csv_reader *r, csv_read_fn read, void *ctx, size_t bufsize)
{
    if (bufsize == 0) {
        bufsize = CSV_DEFAULT_BUFSIZE;
    } else if (bufsize < 2) {
        bufsize = 2; /* room for a "\r" and the byte after it */
    }
    r->read = read;
    r->ctx = ctx;
    r->buf = xmalloc(bufsize);
    r->cap = bufsize;
    r->start = 0;
    r->end = 0;
    r->eof = false;
    r->line = 1;
    r->offset = 0;
}

void csv_reader_free(struct csv_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->start = 0;
    r->end = 0;
}

/* Moves the unconsumed bytes to the front and reads more after them.
 * Returns 0 (r->eof set when the source is exhausted) or -1 with errno. */
static int refill(struct csv_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->eof || r->end == r->cap) {
        return 0;
    }
    ssize_t n = r->read(r->ctx, r->buf + r->end, r->cap - r->end);
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        r->eof = true;
    } else {
        r->end += (size_t)n;
    }
    return 0;
}

static void consume(struct csv_reader *r, size_t to)
{
    r->offset += (off_t)(to - r->start);
    r->start = to;
}

/* Discards input up to and including the next '\n' (or to the end), to resume
 * after a bad record. Returns 0 or -1 with errno on a read error. */
static int skip_line(struct csv_reader *r)
{
    for (;;) {
        const char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            consume(r, (size_t)(nl - r->buf) + 1);
            r->line++;
            return 0;
        }
        consume(r, r->end);
        if (r->eof) {
            return 0;
        }
        if (refill(r) < 0) {
            return -1;
        }
    }
}

struct span {
    size_t start;
    size_t len;
    bool escaped; /* holds "" pairs to collapse */
};

enum scan_result { SCAN_OK, SCAN_MORE, SCAN_BAD };

/*
 * Finds one record starting at r->start without modifying the buffer, so a
 * scan cut short by the buffer's end can simply be repeated after a refill.
 * OK: spans, *nf, *next (past the line end) and *lines (line ends crossed) set.
 * BAD: *next is where the error was found, *why the reason.
 */
static enum scan_result scan(const struct csv_reader *r, struct span *f, size_t *nf, size_t *next,
                             unsigned long *lines, const char **why)
{
    const char *b = r->buf;
    size_t p = r->start;
    size_t e = r->end;
    size_t n = 0;
    unsigned long nl = 0;

    for (;;) {
        /* At the start of a field. */
        if (n == CSV_MAX_FIELDS) {
            *why = "more than " TP0_CSV_STR(CSV_MAX_FIELDS) " fields";
            goto bad;
        }
        struct span *s = &f[n];
        s->escaped = false;
        if (p < e && b[p] == '"') {
            p++;
            s->start = p;
            for (;;) {
                if (p >= e) {
                    if (!r->eof) {
                        return SCAN_MORE;
                    }
                    *why = "unterminated quoted field";
                    goto bad;
                }
                char c = b[p];
                if (c == '"') {
                    if (p + 1 >= e && !r->eof) {
                        return SCAN_MORE;
                    }
                    if (p + 1 < e && b[p + 1] == '"') {
                        s->escaped = true;
                        p += 2;
                        continue;
                    }
                    break;
                }
                if (c == '\n') {
                    nl++;
                }
                p++;
            }
            s->len = p - s->start;
            p++; /* the closing quote */
            if (p < e && b[p] != ',' && b[p] != '\r' && b[p] != '\n') {
                *why = "characters after a closing quote";
                goto bad;
            }
        } else {
            s->start = p;
            while (p < e) {
                char c = b[p];
                if (c == ',' || c == '\n' || c == '\r') {
                    break;
                }
                if (c == '"') {
                    *why = "quote inside an unquoted field";
                    goto bad;
                }
                p++;
            }
            s->len = p - s->start;
        }
        n++;

        /* After a field: a delimiter, a line end, or the end of the input. */
        if (p >= e) {
            if (!r->eof) {
                return SCAN_MORE;
            }
            break;
        }
        if (b[p] == ',') {
            p++;
            continue;
        }
        if (b[p] == '\n') {
            p++;
            nl++;
            break;
        }
        /* b[p] == '\r' */
        if (p + 1 >= e) {
            if (!r->eof) {
                return SCAN_MORE;
            }
            p++;
            nl++;
            break;
        }
        if (b[p + 1] != '\n') {
            *why = "carriage return not followed by a line feed";
            goto bad;
        }
        p += 2;
        nl++;
        break;
    }
    *nf = n;
    *next = p;
    *lines = nl;
    return SCAN_OK;

bad:
    *next = p;
    *lines = nl;
    return SCAN_BAD;
}

/* Collapses the "" pairs of a quoted field in place; returns the new length. */
static size_t unescape(char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        s[w++] = s[i];
        if (s[i] == '"') {
            i++; /* scan() guaranteed the pair */
        }
    }
    return w;
}

static enum csv_status io_error(char *err, size_t errlen)
{
    snprintf(err, errlen, "read failed: %s", strerror(errno));
    return CSV_IO_ERROR;
}

enum csv_status csv_next(struct csv_reader *r, struct csv_record *rec, char *err, size_t errlen)
{
    struct span spans[CSV_MAX_FIELDS];
    for (;;) {
        /* Skip blank lines. */
        while (r->start < r->end) {
            char c = r->buf[r->start];
            if (c == '\n') {
                consume(r, r->start + 1);
                r->line++;
            } else if (c == '\r' && r->start + 1 < r->end && r->buf[r->start + 1] == '\n') {
                consume(r, r->start + 2);
                r->line++;
            } else {
                break;
            }
        }
        if (r->start == r->end || (r->buf[r->start] == '\r' && r->start + 1 == r->end)) {
            if (r->eof) {
                if (r->start < r->end) {
                    consume(r, r->end); /* a lone trailing \r is a blank line */
                    r->line++;
                }
                return CSV_EOF;
            }
            if (refill(r) < 0) {
                return io_error(err, errlen);
            }
            continue;
        }

        size_t nf = 0, next = 0;
        unsigned long lines = 0;
        const char *why = NULL;
        enum scan_result res = scan(r, spans, &nf, &next, &lines, &why);
        if (res == SCAN_OK) {
            for (size_t i = 0; i < nf; i++) {
                char *s = r->buf + spans[i].start;
                size_t len = spans[i].escaped ? unescape(s, spans[i].len) : spans[i].len;
                rec->fields[i] = str_make(s, len);
            }
            rec->nfields = nf;
            rec->line = r->line;
            r->line += lines;
            consume(r, next);
            rec->end_offset = r->offset;
            return CSV_RECORD;
        }
        if (res == SCAN_BAD) {
            rec->nfields = 0;
            rec->line = r->line;
            snprintf(err, errlen, "%s", why);
            r->line += lines;
            consume(r, next);
            if (skip_line(r) < 0) {
                return io_error(err, errlen);
            }
            rec->end_offset = r->offset;
            return CSV_BAD_ROW;
        }
        /* SCAN_MORE */
        if (r->start == 0 && r->end == r->cap) {
            rec->nfields = 0;
            rec->line = r->line;
            snprintf(err, errlen, "record longer than %zu bytes", r->cap);
            for (size_t i = 0; i < r->end; i++) {
                r->line += r->buf[i] == '\n';
            }
            consume(r, r->end);
            if (skip_line(r) < 0) {
                return io_error(err, errlen);
            }
            rec->end_offset = r->offset;
            return CSV_BAD_ROW;
        }
        if (refill(r) < 0) {
            return io_error(err, errlen);
        }
    }
}

ssize_t csv_read_fd(void *ctx, void *dst, size_t len)
{
    int fd = *(const int *)ctx;
    for (;;) {
        ssize_t n = read(fd, dst, len);
        if (n >= 0 || errno != EINTR) {
            return n;
        }
    }
}

ssize_t csv_read_mem(void *ctx, void *dst, size_t len)
{
    struct csv_mem *m = ctx;
    size_t left = m->len - m->pos;
    size_t n = len < left ? len : left;
    if (n > 0) {
        memcpy(dst, m->data + m->pos, n);
    }
    m->pos += n;
    return (ssize_t)n;
}

/* Bytes that force a field into quotes (QUOTE_MINIMAL with the default dialect). */
static const bool needs_quotes[256] = {[','] = true, ['"'] = true, ['\r'] = true, ['\n'] = true};

uint8_t *csv_put_field(uint8_t *dst, struct str field)
{
    const uint8_t *s = (const uint8_t *)field.ptr;
    size_t i = 0;
    /* Copy while checking: the common unquoted field costs a single pass. */
    for (; i < field.len; i++) {
        if (needs_quotes[s[i]]) {
            break;
        }
        dst[i] = s[i];
    }
    if (i == field.len) {
        return dst + i;
    }
    memmove(dst + 1, dst, i);
    dst[0] = '"';
    uint8_t *p = dst + 1 + i;
    for (; i < field.len; i++) {
        *p++ = s[i];
        if (s[i] == '"') {
            *p++ = '"';
        }
    }
    *p++ = '"';
    return p;
}

void csv_write_field(struct buf *out, struct str field)
{
    uint8_t *p = buf_reserve(out, CSV_FIELD_MAX(field.len));
    out->len += (size_t)(csv_put_field(p, field) - p);
}

void csv_write_row(struct buf *out, const struct str *fields, size_t nfields)
{
    if (nfields == 1 && fields[0].len == 0) {
        /* Like Python: a lone empty field is quoted so the row is not a blank line. */
        buf_append(out, "\"\"", 2);
    } else {
        for (size_t i = 0; i < nfields; i++) {
            if (i > 0) {
                buf_append_byte(out, ',');
            }
            csv_write_field(out, fields[i]);
        }
    }
    buf_append(out, "\r\n", 2);
}
