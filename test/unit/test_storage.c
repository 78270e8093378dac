/* Unit tests of the bet storage: exact file bytes, torn tails, load_bets. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp0/csv.h"
#include "tp0/storage.h"

struct tmpdir {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct tmpdir *t = malloc(sizeof(*t));
    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/tp0-storage-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/bets.csv", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmpdir *t = *state;
    unlink(t->path);
    rmdir(t->dir);
    free(t);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static char *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return data;
}

static void assert_file(const char *path, const char *expected, size_t len)
{
    size_t got_len;
    char *got = read_all(path, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, expected, len);
    free(got);
}

static struct bet make_bet(int32_t agency, const char *first, const char *last, const char *doc,
                           const char *date, int32_t number)
{
    struct bet b = {agency,
                    str_make(first, strlen(first)),
                    str_make(last, strlen(last)),
                    str_make(doc, strlen(doc)),
                    str_make(date, strlen(date)),
                    number};
    return b;
}

/* Collects visited bets as text lines "agency|first|last|doc|date|number\n". */
static int collect(void *ctx, const struct bet *b)
{
    struct buf *out = ctx;
    char line[1024];
    int n = snprintf(line, sizeof(line), "%d|%.*s|%.*s|%.*s|%.*s|%d\n", (int)b->agency,
                     (int)b->first_name.len, b->first_name.ptr, (int)b->last_name.len,
                     b->last_name.ptr, (int)b->document.len, b->document.ptr, (int)b->birthdate.len,
                     b->birthdate.ptr, (int)b->number);
    buf_append(out, line, (size_t)n);
    return 0;
}

static void test_append_commit_load(void **state)
{
    struct tmpdir *t = *state;
    struct storage s;
    size_t dropped = 99;
    char err[256] = "";
    assert_int_equal(storage_open(&s, t->path, &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, 0);
    assert_false(storage_has_staged(&s));
    assert_int_equal(storage_commit(&s, err, sizeof(err)), 0); /* nothing staged: no-op */

    struct bet bets[] = {
        make_bet(1, "Santiago Lionel", "Lorca", "30904465", "1999-03-17", 7574),
        make_bet(2, "Ana, María", "O'Brien \"Tito\"", "12345678", "2024-02-29", 0),
        make_bet(2147483647, "José", "Ñandú", "2147483647", "1900-01-01", 2147483647),
    };
    storage_append(&s, bets, 3);
    assert_true(storage_has_staged(&s));
    assert_file(t->path, "", 0); /* nothing on disk before the commit */
    assert_int_equal(storage_commit(&s, err, sizeof(err)), 0);
    assert_false(storage_has_staged(&s));
    static const char rows[] = "1,Santiago Lionel,Lorca,30904465,1999-03-17,7574\r\n"
                               "2,\"Ana, María\",\"O'Brien \"\"Tito\"\"\",12345678,2024-02-29,0\r\n"
                               "2147483647,José,Ñandú,2147483647,1900-01-01,2147483647\r\n";
    assert_file(t->path, rows, sizeof(rows) - 1);
    assert_int_equal((size_t)s.size, sizeof(rows) - 1);
    assert_int_equal(storage_close(&s, err, sizeof(err)), 0);

    /* Reopen (clean: nothing dropped), append through close's implicit commit. */
    assert_int_equal(storage_open(&s, t->path, &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, 0);
    struct bet more = make_bet(5, "x", "y", "1", "2000-01-01", -3);
    storage_append(&s, &more, 1);
    assert_int_equal(storage_close(&s, err, sizeof(err)), 0);
    static const char all[] = "1,Santiago Lionel,Lorca,30904465,1999-03-17,7574\r\n"
                              "2,\"Ana, María\",\"O'Brien \"\"Tito\"\"\",12345678,2024-02-29,0\r\n"
                              "2147483647,José,Ñandú,2147483647,1900-01-01,2147483647\r\n"
                              "5,x,y,1,2000-01-01,-3\r\n";
    assert_file(t->path, all, sizeof(all) - 1);

    struct buf seen = BUF_INIT;
    assert_int_equal(load_bets(t->path, collect, &seen, err, sizeof(err)), 0);
    static const char expected[] = "1|Santiago Lionel|Lorca|30904465|1999-03-17|7574\n"
                                   "2|Ana, María|O'Brien \"Tito\"|12345678|2024-02-29|0\n"
                                   "2147483647|José|Ñandú|2147483647|1900-01-01|2147483647\n"
                                   "5|x|y|1|2000-01-01|-3\n";
    assert_int_equal(seen.len, sizeof(expected) - 1);
    assert_memory_equal(seen.data, expected, seen.len);
    buf_free(&seen);
}

static void test_storage_matches_python_fixture(void **state)
{
    struct tmpdir *t = *state;
    /* The rows of data/awkward.csv (Python's csv module) stored through storage_append. */
    struct bet bets[] = {
        make_bet(1, "Santiago Lionel", "Lorca", "30904465", "1999-03-17", 7574),
        make_bet(2, "Ana, María", "O'Brien \"Tito\"", "12345678", "2024-02-29", 0),
        make_bet(3, "José Ñandú", "Müller-Łukasz 🎲", "2147483647", "1900-01-01", 2147483647),
        make_bet(4, "\"quoted\"", "line\nbreak", "1", "2100-12-31", 42),
        make_bet(5, "crlf\r\ninside", "trailing,", "99", "2000-01-01", 123),
        make_bet(6, ",", "\"", "7", "2000-01-01", 1),
        make_bet(7, " leading space", "tab\there", "0000000001", "2000-01-01", -5),
    };
    struct storage s;
    size_t dropped;
    char err[256] = "";
    assert_int_equal(storage_open(&s, t->path, &dropped, err, sizeof(err)), 0);
    storage_append(&s, bets, sizeof(bets) / sizeof(bets[0]));
    assert_int_equal(storage_close(&s, err, sizeof(err)), 0);
    size_t len;
    char *py = read_all(TP0_UNIT_DATA_DIR "/awkward.csv", &len);
    assert_file(t->path, py, len);
    free(py);

    /* And load_bets reads Python's file back field for field. */
    struct buf seen = BUF_INIT, want = BUF_INIT;
    assert_int_equal(load_bets(TP0_UNIT_DATA_DIR "/awkward.csv", collect, &seen, err, sizeof(err)),
                     0);
    for (size_t i = 0; i < sizeof(bets) / sizeof(bets[0]); i++) {
        collect(&want, &bets[i]);
    }
    assert_int_equal(seen.len, want.len);
    assert_memory_equal(seen.data, want.data, want.len);
    buf_free(&seen);
    buf_free(&want);
}

static void expect_cut(const char *path, const char *content, size_t len, size_t keep)
{
    write_file(path, content, len);
    struct storage s;
    size_t dropped = 12345;
    char err[256] = "";
    assert_int_equal(storage_open(&s, path, &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, len - keep);
    assert_int_equal((size_t)s.size, keep);
    assert_file(path, content, keep);
    /* New rows go right after the last whole row. */
    struct bet b = make_bet(9, "n", "m", "1", "2000-01-01", 1);
    storage_append(&s, &b, 1);
    assert_int_equal(storage_close(&s, err, sizeof(err)), 0);
    size_t got_len;
    char *got = read_all(path, &got_len);
    assert_int_equal(got_len, keep + strlen("9,n,m,1,2000-01-01,1\r\n"));
    assert_memory_equal(got, content, keep);
    assert_memory_equal(got + keep, "9,n,m,1,2000-01-01,1\r\n", got_len - keep);
    free(got);
}

static void test_torn_tail(void **state)
{
    struct tmpdir *t = *state;
    static const char row[] = "1,a,b,1,2000-01-01,5\r\n";
    static const char torn[] = "1,a,b,1,2000-01-01,5\r\n2,c,d,2,2000-0";
    expect_cut(t->path, torn, sizeof(torn) - 1, sizeof(row) - 1);
    static const char half_crlf[] = "1,a,b,1,2000-01-01,5\r\n2,c,d,2,2000-01-01,6\r";
    expect_cut(t->path, half_crlf, sizeof(half_crlf) - 1, sizeof(row) - 1);
    /* A row ended by a bare "\n" (a file edited by hand) is whole: nothing is cut. */
    static const char lf_only[] = "1,a,b,1,2000-01-01,5\r\n2,c,d,2,2000-01-01,6\n";
    expect_cut(t->path, lf_only, sizeof(lf_only) - 1, sizeof(lf_only) - 1);
    static const char lf_file[] = "1,a,b,1,2000-01-01,5\n2,c,d,2,2000-01-01,6\n3,e";
    expect_cut(t->path, lf_file, sizeof(lf_file) - 1, sizeof(lf_file) - 1 - 3);
    static const char no_row[] = "1,a,b";
    expect_cut(t->path, no_row, sizeof(no_row) - 1, 0);
    expect_cut(t->path, "\n", 1, 1);
    expect_cut(t->path, "\r\n", 2, 2);
    expect_cut(t->path, row, sizeof(row) - 1, sizeof(row) - 1);
}

static void test_torn_tail_across_chunks(void **state)
{
    struct tmpdir *t = *state;
    /* Tails longer than the 64 KiB read-back chunk, and a "\r\n" split between chunks. */
    static const char row[] = "1,a,b,1,2000-01-01,5\r\n";
    size_t rl = sizeof(row) - 1;
    size_t tails[] = {65534, 65535, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        size_t len = 3 * rl + tails[i];
        char *data = malloc(len);
        assert_non_null(data);
        for (int k = 0; k < 3; k++) {
            memcpy(data + k * rl, row, rl);
        }
        memset(data + 3 * rl, 'x', tails[i]);
        expect_cut(t->path, data, len, 3 * rl);
        free(data);
    }
}

static void test_commit_failure_keeps_staged(void **state)
{
    struct tmpdir *t = *state;
    struct storage s;
    size_t dropped;
    char err[256] = "";
    assert_int_equal(storage_open(&s, t->path, &dropped, err, sizeof(err)), 0);
    struct bet b = make_bet(1, "a", "b", "1", "2000-01-01", 2);
    storage_append(&s, &b, 1);
    size_t staged = s.staged.len;

    /* Swap in a read-only descriptor: the write fails, nothing is lost. */
    int real_fd = s.fd;
    s.fd = open("/dev/null", O_RDONLY);
    assert_true(s.fd >= 0);
    assert_int_equal(storage_commit(&s, err, sizeof(err)), -1);
    char expected[256];
    snprintf(expected, sizeof(expected), "cannot write %s: Bad file descriptor", t->path);
    assert_true(strncmp(err, expected, strlen(expected)) == 0);
    assert_int_equal(s.staged.len, staged);
    close(s.fd);
    s.fd = real_fd;

    assert_int_equal(storage_commit(&s, err, sizeof(err)), 0);
    assert_int_equal(storage_close(&s, err, sizeof(err)), 0);
    static const char want[] = "1,a,b,1,2000-01-01,2\r\n";
    assert_file(t->path, want, sizeof(want) - 1);
}

static void expect_load_error(const char *path, const char *content, const char *reason)
{
    write_file(path, content, strlen(content));
    struct buf seen = BUF_INIT;
    char err[512] = "";
    assert_int_equal(load_bets(path, collect, &seen, err, sizeof(err)), -1);
    char expected[512];
    snprintf(expected, sizeof(expected), "%s:%s", path, reason);
    assert_string_equal(err, expected);
    buf_free(&seen);
}

static void test_load_malformed(void **state)
{
    struct tmpdir *t = *state;
    expect_load_error(t->path, "1,a,b,1,2000-01-01,5\r\n1,a,b\r\n", "2: expected 6 fields, got 3");
    expect_load_error(t->path, "1,a,b,1,2000-01-01,5\r\n\r\n1,a\"x,b,1,2000-01-01,5\r\n",
                      "3: quote inside an unquoted field");
    expect_load_error(t->path, "x,a,b,1,2000-01-01,5\r\n", "1: agency 'x' is not an int32");
    expect_load_error(t->path, "1,a,b,1,2000-01-01,2147483648\r\n",
                      "1: number '2147483648' is not an int32");
    expect_load_error(t->path, "1,\"a\nb\",b,1,2000-01-01,5\r\n1,a,b,1,2000-01-01,5,7\r\n",
                      "3: expected 6 fields, got 7");
    expect_load_error(t->path, "1,\"unterminated,b,1,2000-01-01,5\r\n",
                      "1: unterminated quoted field");
}

static int stop_at_two(void *ctx, const struct bet *b)
{
    int *n = ctx;
    (*n)++;
    return b->number == 2 ? 42 : 0;
}

static void test_load_stops_and_missing_file(void **state)
{
    struct tmpdir *t = *state;
    static const char rows[] = "1,a,b,1,2000-01-01,1\r\n1,a,b,1,2000-01-01,2\r\n"
                               "1,a,b,1,2000-01-01,3\r\n";
    write_file(t->path, rows, sizeof(rows) - 1);
    int n = 0;
    char err[256] = "";
    assert_int_equal(load_bets(t->path, stop_at_two, &n, err, sizeof(err)), 42);
    assert_int_equal(n, 2);

    /* An empty file holds no bets. */
    write_file(t->path, "", 0);
    n = 0;
    assert_int_equal(load_bets(t->path, stop_at_two, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.csv", t->dir);
    assert_int_equal(load_bets(missing, stop_at_two, &n, err, sizeof(err)), -1);
    char expected[256];
    snprintf(expected, sizeof(expected), "cannot open %s: No such file or directory", missing);
    assert_string_equal(err, expected);

    struct storage s;
    size_t dropped;
    snprintf(missing, sizeof(missing), "%s/no/such/dir.csv", t->dir);
    assert_int_equal(storage_open(&s, missing, &dropped, err, sizeof(err)), -1);
    snprintf(expected, sizeof(expected), "cannot open %s: No such file or directory", missing);
    assert_string_equal(err, expected);
}

static void test_load_from_reader(void **state)
{
    (void)state;
    static const char rows[] = "3,a,b,1,2000-01-01,7574\n";
    struct csv_mem mem = {rows, sizeof(rows) - 1, 0};
    struct csv_reader r;
    csv_reader_init(&r, csv_read_mem, &mem, 64);
    struct buf seen = BUF_INIT;
    char err[256] = "";
    assert_int_equal(load_bets_from(&r, "mem", collect, &seen, err, sizeof(err)), 0);
    assert_int_equal(seen.len, strlen("3|a|b|1|2000-01-01|7574\n"));
    assert_memory_equal(seen.data, "3|a|b|1|2000-01-01|7574\n", seen.len);
    csv_reader_free(&r);
    buf_free(&seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_commit_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_matches_python_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure_keeps_staged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_stops_and_missing_file, setup, teardown),
        cmocka_unit_test(test_load_from_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
