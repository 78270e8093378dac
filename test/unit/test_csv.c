/*
 * Unit tests of the CSV reader and writer. data/awkward.csv was written by
 * Python's csv module (see data/make_fixtures.py), essentially:
 *   csv.writer(open("awkward.csv", "w", newline="", encoding="utf-8")).writerows(AWKWARD_ROWS)
 * The C writer must produce the same bytes and the C reader must read them back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp0/csv.h"

#define NCOLS 6
/* The same table as AWKWARD_ROWS in data/make_fixtures.py. */
static const char *const awkward[][NCOLS] = {
    {"1", "Santiago Lionel", "Lorca", "30904465", "1999-03-17", "7574"},
    {"2", "Ana, María", "O'Brien \"Tito\"", "12345678", "2024-02-29", "0"},
    {"3", "José Ñandú", "Müller-Łukasz 🎲", "2147483647", "1900-01-01", "2147483647"},
    {"4", "\"quoted\"", "line\nbreak", "1", "2100-12-31", "42"},
    {"5", "crlf\r\ninside", "trailing,", "99", "2000-01-01", "123"},
    {"6", ",", "\"", "7", "2000-01-01", "1"},
    {"7", " leading space", "tab\there", "0000000001", "2000-01-01", "-5"},
};
#define NROWS (sizeof(awkward) / sizeof(awkward[0]))
/* Line where each row starts: rows 4 and 5 hold one line break each. */
static const unsigned long awkward_lines[NROWS] = {1, 2, 3, 4, 6, 8, 9};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    char *data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return data;
}

static void assert_field(struct str f, const char *expected)
{
    size_t len = strlen(expected);
    if (f.len != len || memcmp(f.ptr, expected, len) != 0) {
        fail_msg("field '%.*s' != expected '%s'", (int)f.len, f.ptr, expected);
    }
}

static void build_awkward(struct buf *out)
{
    for (size_t i = 0; i < NROWS; i++) {
        struct str fields[NCOLS];
        for (size_t j = 0; j < NCOLS; j++) {
            fields[j] = str_make(awkward[i][j], strlen(awkward[i][j]));
        }
        csv_write_row(out, fields, NCOLS);
    }
}

static void test_writer_matches_python(void **state)
{
    (void)state;
    size_t len;
    char *py = read_file(TP0_UNIT_DATA_DIR "/awkward.csv", &len);
    struct buf out = BUF_INIT;
    build_awkward(&out);
    assert_int_equal(out.len, len);
    assert_memory_equal(out.data, py, len);
    free(py);
    buf_free(&out);
}

static void test_writer_fields(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"", ""},
        {"plain", "plain"},
        {"a,b", "\"a,b\""},
        {"\"", "\"\"\"\""},
        {"a\"b", "\"a\"\"b\""},
        {"\r", "\"\r\""},
        {"\n", "\"\n\""},
        {"ñ", "ñ"},
        {" x ", " x "},
        {"'", "'"},
        {"a;b", "a;b"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf out = BUF_INIT;
        csv_write_field(&out, str_make(cases[i].in, strlen(cases[i].in)));
        assert_int_equal(out.len, strlen(cases[i].out));
        assert_memory_equal(out.data, cases[i].out, out.len);
        buf_free(&out);
    }
    /* Like Python, a row of one empty field is "" so it does not read as a blank line. */
    struct buf out = BUF_INIT;
    struct str one_empty = STR_LIT("");
    csv_write_row(&out, &one_empty, 1);
    struct str two_empty[] = {STR_LIT(""), STR_LIT("")};
    csv_write_row(&out, two_empty, 2);
    assert_int_equal(out.len, strlen("\"\"\r\n,\r\n"));
    assert_memory_equal(out.data, "\"\"\r\n,\r\n", out.len);
    buf_free(&out);
}

/* A read function handing out at most `chunk` bytes per call. */
struct chunked {
    struct csv_mem mem;
    size_t chunk;
};

static ssize_t read_chunked(void *ctx, void *dst, size_t len)
{
    struct chunked *c = ctx;
    return csv_read_mem(&c->mem, dst, len < c->chunk ? len : c->chunk);
}

static void read_awkward(const char *data, size_t len, size_t chunk, size_t bufsize)
{
    struct chunked c = {{data, len, 0}, chunk};
    struct csv_reader r;
    struct csv_record rec;
    char err[128];
    csv_reader_init(&r, read_chunked, &c, bufsize);
    for (size_t i = 0; i < NROWS; i++) {
        assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_RECORD);
        assert_int_equal(rec.nfields, NCOLS);
        assert_int_equal(rec.line, awkward_lines[i]);
        for (size_t j = 0; j < NCOLS; j++) {
            assert_field(rec.fields[j], awkward[i][j]);
        }
    }
    assert_int_equal((size_t)rec.end_offset, len);
    assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_EOF);
    assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_EOF);
    csv_reader_free(&r);
}

static void test_reader_reads_python_file(void **state)
{
    (void)state;
    size_t len;
    char *py = read_file(TP0_UNIT_DATA_DIR "/awkward.csv", &len);
    read_awkward(py, len, len, CSV_DEFAULT_BUFSIZE);
    /* Every read size, and a buffer just big enough for the longest record. */
    for (size_t chunk = 1; chunk <= len; chunk++) {
        read_awkward(py, len, chunk, 96);
    }
    free(py);
}

static void test_reader_fd(void **state)
{
    (void)state;
    int fd = open(TP0_UNIT_DATA_DIR "/awkward.csv", O_RDONLY);
    assert_true(fd >= 0);
    struct csv_reader r;
    struct csv_record rec;
    char err[128];
    csv_reader_init(&r, csv_read_fd, &fd, 0);
    size_t rows = 0;
    enum csv_status st;
    while ((st = csv_next(&r, &rec, err, sizeof(err))) == CSV_RECORD) {
        assert_field(rec.fields[3], awkward[rows][3]);
        rows++;
    }
    assert_int_equal(st, CSV_EOF);
    assert_int_equal(rows, NROWS);
    csv_reader_free(&r);
    close(fd);
}

/* Reads all of `text` with the given buffer size, rendering each outcome as
 * "line:field|field|...\n" or "line:!reason\n", and compares with `expected`. */
static void expect_parse(const char *text, size_t bufsize, const char *expected)
{
    struct csv_mem mem = {text, strlen(text), 0};
    struct csv_reader r;
    struct csv_record rec;
    char err[128];
    char got[4096] = "";
    size_t used = 0;
    csv_reader_init(&r, csv_read_mem, &mem, bufsize);
    for (;;) {
        enum csv_status st = csv_next(&r, &rec, err, sizeof(err));
        if (st == CSV_EOF) {
            break;
        }
        assert_true(st == CSV_RECORD || st == CSV_BAD_ROW);
        used += (size_t)snprintf(got + used, sizeof(got) - used, "%lu:", rec.line);
        if (st == CSV_BAD_ROW) {
            used += (size_t)snprintf(got + used, sizeof(got) - used, "!%s", err);
        } else {
            for (size_t i = 0; i < rec.nfields; i++) {
                used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%.*s", i ? "|" : "",
                                         (int)rec.fields[i].len, rec.fields[i].ptr);
            }
        }
        used +=
            (size_t)snprintf(got + used, sizeof(got) - used, "@%lld\n", (long long)rec.end_offset);
        assert_true(used < sizeof(got));
    }
    csv_reader_free(&r);
    assert_string_equal(got, expected);
    (void)used;
}

static void expect_parse_all_sizes(const char *text, const char *expected)
{
    expect_parse(text, CSV_DEFAULT_BUFSIZE, expected);
    expect_parse(text, 64, expected);
}

static void test_reader_line_ends(void **state)
{
    (void)state;
    /* \n and \r\n, blank lines skipped, a final record without a line end. */
    expect_parse_all_sizes("a,b\nc,d\r\n\n\r\ne,f", "1:a|b@4\n2:c|d@9\n5:e|f@15\n");
    expect_parse_all_sizes("\n\n", "");
    expect_parse_all_sizes("", "");
    expect_parse_all_sizes("x\r", "1:x@2\n");
    expect_parse_all_sizes("x\r\n\r", "1:x@3\n");
    /* Empty fields, a lone quoted empty field, a trailing comma. */
    expect_parse_all_sizes(",\n\"\"\na,\n", "1:|@2\n2:@5\n3:a|@8\n");
    expect_parse_all_sizes("\"a\"\"b\",\"\"\"\"\n", "1:a\"b|\"@12\n");
    expect_parse_all_sizes("\"x\ny\"\r\nz\n", "1:x\ny@7\n3:z@9\n");
}

static void test_reader_bad_rows(void **state)
{
    (void)state;
    expect_parse_all_sizes("ab\"c,d\nok\n", "1:!quote inside an unquoted field@7\n2:ok@10\n");
    expect_parse_all_sizes("\"ab\"c,d\r\nok\r\n",
                           "1:!characters after a closing quote@9\n2:ok@13\n");
    expect_parse_all_sizes("ok\n\"never closed,\nx\n", "1:ok@3\n2:!unterminated quoted field@20\n");
    expect_parse_all_sizes("a\rb\nok\n",
                           "1:!carriage return not followed by a line feed@4\n2:ok@7\n");
    /* A quoted line break inside a bad row: lines keep counting. */
    expect_parse_all_sizes("\"a\nb\"x\nok\n", "1:!characters after a closing quote@7\n3:ok@10\n");

    /* 16 fields are fine, 17 are not. */
    expect_parse_all_sizes("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\nok\n",
                           "1:1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16@39\n2:ok@42\n");
    expect_parse_all_sizes("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\nok\n",
                           "1:!more than 16 fields@42\n2:ok@45\n");
}

static void test_reader_record_longer_than_buffer(void **state)
{
    (void)state;
    /* 16-byte buffer: the 30-byte row is skipped up to its line end, then reading resumes. */
    expect_parse("ok,1\nabcdefghij,abcdefghij,abcdefg\nok,2\r\n", 16,
                 "1:ok|1@5\n2:!record longer than 16 bytes@35\n3:ok|2@41\n");
    /* A long final record without a line end. */
    expect_parse("ok\nabcdefghijklmnopqrstuvwxyz", 16,
                 "1:ok@3\n2:!record longer than 16 bytes@29\n");
    /* A one-byte buffer is raised to two, enough for blank lines and line ends. */
    expect_parse("\r\n\r\n", 1, "");
    expect_parse("\n\nx", 1, "3:x@3\n");
    expect_parse("\n\nxyz\nw\n", 1, "3:!record longer than 2 bytes@6\n4:w@8\n");
    /* Exactly filling the buffer with its line end is fine. */
    expect_parse("abcdefghijklmn\r\nx\n", 16, "1:abcdefghijklmn@16\n2:x@18\n");
}

static ssize_t read_fail(void *ctx, void *dst, size_t len)
{
    (void)ctx;
    (void)dst;
    (void)len;
    errno = EIO;
    return -1;
}

static void test_reader_io_error(void **state)
{
    (void)state;
    struct csv_reader r;
    struct csv_record rec;
    char err[128];
    csv_reader_init(&r, read_fail, NULL, 32);
    assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_IO_ERROR);
    assert_string_equal(err, "read failed: Input/output error");
    csv_reader_free(&r);
}

static int eintr_pipe[2] = {-1, -1};
static volatile sig_atomic_t eintr_ticks;

static void eintr_tick(int sig)
{
    (void)sig;
    /* Ticks 1-4 only interrupt the blocked read; tick 5 supplies the data. */
    if (++eintr_ticks == 5) {
        static const char row[] = "a,b\n";
        if (write(eintr_pipe[1], row, sizeof(row) - 1) < 0) {
            _exit(3);
        }
        close(eintr_pipe[1]);
    }
}

static void test_reader_fd_retries_eintr(void **state)
{
    (void)state;
    assert_int_equal(pipe(eintr_pipe), 0);
    eintr_ticks = 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = eintr_tick;
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read fails with EINTR */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    assert_int_equal(setitimer(ITIMER_REAL, &every_ms, NULL), 0);

    struct csv_reader r;
    struct csv_record rec;
    char err[128] = "";
    csv_reader_init(&r, csv_read_fd, &eintr_pipe[0], 64);
    enum csv_status st = csv_next(&r, &rec, err, sizeof(err));
    enum csv_status st2 = csv_next(&r, &rec, err, sizeof(err));
    assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
    csv_reader_free(&r);
    close(eintr_pipe[0]);

    if (st != CSV_RECORD) {
        fail_msg("csv_next: %d (%s)", (int)st, err);
    }
    assert_int_equal(st2, CSV_EOF);
    assert_true(eintr_ticks >= 5);
}

static void test_round_trip_generated(void **state)
{
    (void)state;
    /* Every byte value except NUL in short fields, written then read back. */
    struct buf out = BUF_INIT;
    char fields[256][4];
    size_t nrows = 0;
    for (int c = 1; c < 256; c++) {
        fields[c][0] = (char)c;
        fields[c][1] = 'x';
        fields[c][2] = (char)c;
        fields[c][3] = '\0';
        struct str row[3] = {str_make(fields[c], 3), STR_LIT(""), str_make(fields[c], 1)};
        csv_write_row(&out, row, 3);
        nrows++;
    }
    struct csv_mem mem = {(const char *)out.data, out.len, 0};
    struct csv_reader r;
    struct csv_record rec;
    char err[128];
    csv_reader_init(&r, csv_read_mem, &mem, 64);
    for (int c = 1; c < 256; c++) {
        assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_RECORD);
        assert_int_equal(rec.nfields, 3);
        assert_int_equal(rec.fields[0].len, 3);
        assert_memory_equal(rec.fields[0].ptr, fields[c], 3);
        assert_int_equal(rec.fields[1].len, 0);
        assert_int_equal(rec.fields[2].len, 1);
        assert_int_equal((unsigned char)rec.fields[2].ptr[0], c);
    }
    assert_int_equal(csv_next(&r, &rec, err, sizeof(err)), CSV_EOF);
    assert_int_equal(nrows, 255);
    csv_reader_free(&r);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_matches_python),
        cmocka_unit_test(test_writer_fields),
        cmocka_unit_test(test_reader_reads_python_file),
        cmocka_unit_test(test_reader_fd),
        cmocka_unit_test(test_reader_line_ends),
        cmocka_unit_test(test_reader_bad_rows),
        cmocka_unit_test(test_reader_record_longer_than_buffer),
        cmocka_unit_test(test_reader_io_error),
        cmocka_unit_test(test_reader_fd_retries_eintr),
        cmocka_unit_test(test_round_trip_generated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
