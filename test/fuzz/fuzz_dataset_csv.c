/*
 * Fuzz target: the CSV reader as the client reads an agency's dataset.
 *
 * Input: byte 0 picks the reader's buffer size (small ones, so records longer
 * than the buffer are common), byte 1 the most bytes one read may return (short
 * reads, as from a pipe), byte 2 the error buffer size; the rest is the file.
 * Every record's fields must lie in the reader's buffer, the reader must make
 * progress, and a record written back with csv_write_row must read back equal.
 * Five-field records become bets as the client builds them, and are validated.
 */
#include <string.h>

#include "fuzz.h"
#include "tp0/csv.h"

struct short_reads {
    struct csv_mem mem;
    size_t max; /* most bytes per read */
};

static ssize_t read_short(void *ctx, void *dst, size_t len)
{
    struct short_reads *s = ctx;
    return csv_read_mem(&s->mem, dst, len < s->max ? len : s->max);
}

static struct buf out;

static bool records_equal(const struct csv_record *a, const struct csv_record *b)
{
    if (a->nfields != b->nfields) {
        return false;
    }
    for (size_t i = 0; i < a->nfields; i++) {
        if (!fuzz_str_eq(a->fields[i], b->fields[i])) {
            return false;
        }
    }
    return true;
}

/* csv_write_row, then a fresh reader over its bytes: the same record, then EOF. */
static void round_trip(const struct csv_record *rec)
{
    buf_reset(&out);
    csv_write_row(&out, rec->fields, rec->nfields);
    FUZZ_CHECK(out.len >= 2 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
    struct csv_mem mem = {(const char *)out.data, out.len, 0};
    struct csv_reader r;
    csv_reader_init(&r, csv_read_mem, &mem, out.len + 16);
    struct csv_record again;
    char err[256];
    enum csv_status st = csv_next(&r, &again, err, sizeof err);
    if (st != CSV_RECORD) {
        fprintf(stderr, "rewritten record not read back (status %d): %s\n", (int)st,
                st == CSV_BAD_ROW ? err : "");
    }
    FUZZ_CHECK(st == CSV_RECORD);
    FUZZ_CHECK(records_equal(rec, &again));
    FUZZ_CHECK(again.end_offset == (off_t)out.len);
    FUZZ_CHECK(csv_next(&r, &again, err, sizeof err) == CSV_EOF);
    csv_reader_free(&r);
}

/* agency,first,last,document,birthdate,number minus the agency: the dataset
 * row. The agency comes from the client's configuration. */
static void as_bet(const struct csv_record *rec, size_t errlen)
{
    int64_t number;
    if (rec->nfields != 5 || !str_to_i64(rec->fields[4], INT32_MIN, INT32_MAX, &number)) {
        return;
    }
    struct bet bet = {
        .agency = 1,
        .first_name = rec->fields[0],
        .last_name = rec->fields[1],
        .document = rec->fields[2],
        .birthdate = rec->fields[3],
        .number = (int32_t)number,
    };
    fuzz_validate_bet(&bet, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    /* 1..128 bytes, or a roomy 4 KiB. */
    size_t bufsize = data[0] < 0x80 ? (size_t)data[0] + 1 : 4096;
    size_t max_read = data[1] >= 0xF0 ? SIZE_MAX : (size_t)(data[1] % 32) + 1;
    size_t errlen = fuzz_errlen(data[2]);
    const char *text = (const char *)data + 3;
    size_t len = size - 3;

    struct short_reads src = {{text, len, 0}, max_read};
    struct csv_reader r;
    csv_reader_init(&r, read_short, &src, bufsize);
    struct csv_record rec;
    char err[256];
    off_t last_end = 0;
    unsigned long last_line = 0;
    for (size_t calls = 1;; calls++) {
        /* Every result but EOF consumes at least one byte. */
        FUZZ_CHECK(calls <= len + 1);
        memset(err, 'x', sizeof err);
        enum csv_status st = csv_next(&r, &rec, err, errlen);
        FUZZ_CHECK(st == CSV_RECORD || st == CSV_BAD_ROW || st == CSV_EOF);
        fuzz_check_err(err, errlen, st == CSV_BAD_ROW);
        if (st == CSV_EOF) {
            break;
        }
        FUZZ_CHECK(rec.line >= 1 && rec.line >= last_line);
        last_line = rec.line;
        if (st == CSV_BAD_ROW) {
            continue;
        }
        FUZZ_CHECK(rec.nfields >= 1 && rec.nfields <= CSV_MAX_FIELDS);
        for (size_t i = 0; i < rec.nfields; i++) {
            FUZZ_CHECK(fuzz_inside(rec.fields[i].ptr, rec.fields[i].len, r.buf, r.cap));
            fuzz_touch(rec.fields[i]);
        }
        FUZZ_CHECK(rec.end_offset > last_end && rec.end_offset <= (off_t)len);
        last_end = rec.end_offset;
        round_trip(&rec);
        as_bet(&rec, errlen);
    }
    FUZZ_CHECK(csv_next(&r, &rec, err, sizeof err) == CSV_EOF);
    csv_reader_free(&r);
    return 0;
}
