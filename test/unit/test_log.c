/* Unit tests of the logger: exact line shape, sanitising, levels, buffering. */
/* strptime is an XSI function. */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp0/log.h"

#define TS_LEN 20 /* "YYYY-MM-DD HH:MM:SS " */

static int out_fd = -1;

static int setup(void **state)
{
    (void)state;
    char path[] = "/tmp/tp0-log-XXXXXX";
    out_fd = mkstemp(path);
    if (out_fd < 0) {
        return -1;
    }
    unlink(path);
    log_init(LOG_DEBUG, out_fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_shutdown();
    close(out_fd);
    out_fd = -1;
    return 0;
}

/* Everything written to the log file so far, NUL-terminated. */
static char *output(size_t *len)
{
    struct stat st;
    assert_int_equal(fstat(out_fd, &st), 0);
    char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(pread(out_fd, data, (size_t)st.st_size, 0), st.st_size);
    data[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return data;
}

/* Checks the timestamp's shape and that it is the local time within a few seconds. */
static void check_timestamp(const char *line)
{
    for (int i = 0; i < TS_LEN; i++) {
        char c = line[i];
        switch (i) {
        case 4:
        case 7:
            assert_int_equal(c, '-');
            break;
        case 10:
        case 19:
            assert_int_equal(c, ' ');
            break;
        case 13:
        case 16:
            assert_int_equal(c, ':');
            break;
        default:
            assert_true(c >= '0' && c <= '9');
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_non_null(strptime(line, "%Y-%m-%d %H:%M:%S", &tm));
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    time_t now = time(NULL);
    assert_true(t <= now && now - t <= 5);
}

/* Compares the log output, line by line, with `expected` minus the timestamps. */
static void expect_lines(const char *expected)
{
    size_t len;
    char *got = output(&len);
    char *stripped = malloc(len + 1);
    assert_non_null(stripped);
    size_t w = 0;
    char *p = got;
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line is complete */
        assert_true(nl - p >= TS_LEN);
        check_timestamp(p);
        size_t n = (size_t)(nl + 1 - (p + TS_LEN));
        memcpy(stripped + w, p + TS_LEN, n);
        w += n;
        p = nl + 1;
    }
    stripped[w] = '\0';
    assert_string_equal(stripped, expected);
    free(stripped);
    free(got);
}

static void test_line_format(void **state)
{
    (void)state;
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "apuesta_almacenada", "success");
    log_line_str(&l, "dni", STR_LIT("30904465"));
    log_line_int(&l, "numero", 7574);
    log_line_end(&l);
    log_action(LOG_INFO, "sorteo", "success");
    log_line_begin(&l, LOG_ERROR, "apuesta_recibida", "fail");
    log_line_int(&l, "cantidad", -12);
    log_line_cstr(&l, "ip", "127.0.0.1");
    log_line_fmt(&l, "error", "bet %d: %s", 3, "missing key NUMERO");
    log_line_end(&l);
    log_msg(LOG_WARNING, "cannot open %s", "/x");
    log_msg(LOG_DEBUG, "debug %d", 1);
    log_flush();
    expect_lines("INFO     action: apuesta_almacenada | result: success | dni: 30904465 | numero: "
                 "7574\n"
                 "INFO     action: sorteo | result: success\n"
                 "ERROR    action: apuesta_recibida | result: fail | cantidad: -12 | ip: "
                 "127.0.0.1 | error: bet 3: missing key NUMERO\n"
                 "WARNING  cannot open /x\n"
                 "DEBUG    debug 1\n");
}

static void test_sanitizing(void **state)
{
    (void)state;
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "receive_message", "success");
    log_line_str(&l, "msg", STR_LIT("a|b\nc\r\x01\x7f\tJosé 🎲"));
    log_line_str(&l, "nul", str_make("x\0y", 3));
    log_line_cstr(&l, "pipe", "||");
    log_line_fmt(&l, "fmt", "%s", "1|2\n3");
    log_line_end(&l);
    log_msg(LOG_INFO, "plain %s", "line\nbreak|pipe");
    log_flush();
    expect_lines("INFO     action: receive_message | result: success | msg: a?b?c????José 🎲 "
                 "| nul: x?y | pipe: ?? | fmt: 1?2?3\n"
                 "INFO     plain line?break?pipe\n");
}

static void test_sanitizing_utf8(void **state)
{
    (void)state;
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "receive_message", "success");
    /* Valid multi-byte characters stay; each byte that is not part of one
     * becomes '?': a lone continuation, a truncated sequence at the end
     * (as when a reason cuts a value short), an overlong form, a surrogate. */
    log_line_str(&l, "ok", STR_LIT("N\xc2\xb0 \xf0\x9f\x8e\xb2"));
    log_line_str(&l, "bad",
                 STR_LIT("a\x80"
                         "b\xc0\xaf"
                         "c\xed\xa0\x80"
                         "d\xe2\x82"));
    log_line_end(&l);
    log_flush();
    expect_lines("INFO     action: receive_message | result: success | ok: N\xc2\xb0 "
                 "\xf0\x9f\x8e\xb2 | bad: a?b??c???d??\n");
}

static void test_levels(void **state)
{
    (void)state;
    log_set_level(LOG_WARNING);
    assert_false(log_enabled(LOG_DEBUG));
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARNING));
    assert_true(log_enabled(LOG_ERROR));

    struct log_line l;
    log_line_begin(&l, LOG_INFO, "hidden", "success");
    log_line_str(&l, "k", STR_LIT("v"));
    log_line_int(&l, "n", 1);
    log_line_cstr(&l, "c", "v");
    log_line_fmt(&l, "f", "%d", 1);
    log_line_end(&l);
    log_msg(LOG_DEBUG, "hidden");
    log_msg(LOG_INFO, "hidden");
    log_action(LOG_INFO, "hidden", "success");
    struct buf staged = BUF_INIT;
    log_line_begin_into(&l, &staged, LOG_DEBUG, "hidden", "success");
    log_line_int(&l, "n", 1);
    log_line_end(&l);
    assert_int_equal(staged.len, 0);
    log_flush();
    size_t len;
    free(output(&len));
    assert_int_equal(len, 0);

    log_msg(LOG_WARNING, "shown");
    log_action(LOG_ERROR, "shown", "fail");
    log_flush();
    expect_lines("WARNING  shown\nERROR    action: shown | result: fail\n");
    buf_free(&staged);
}

static void test_level_names(void **state)
{
    (void)state;
    enum log_level lv;
    static const struct {
        const char *name;
        enum log_level level;
    } ok[] = {
        {"DEBUG", LOG_DEBUG}, {"debug", LOG_DEBUG},     {"Info", LOG_INFO},
        {"INFO", LOG_INFO},   {"warning", LOG_WARNING}, {"WARN", LOG_WARNING},
        {"error", LOG_ERROR}, {"CRITICAL", LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(log_level_parse(ok[i].name, &lv));
        assert_int_equal(lv, ok[i].level);
    }
    assert_false(log_level_parse("", &lv));
    assert_false(log_level_parse("verbose", &lv));
    assert_false(log_level_parse("INFO ", &lv));
    assert_string_equal(log_level_name(LOG_DEBUG), "DEBUG");
    assert_string_equal(log_level_name(LOG_INFO), "INFO");
    assert_string_equal(log_level_name(LOG_WARNING), "WARNING");
    assert_string_equal(log_level_name(LOG_ERROR), "ERROR");
}

static void test_staged_lines(void **state)
{
    (void)state;
    struct buf staged = BUF_INIT;
    struct log_line l;
    log_line_begin_into(&l, &staged, LOG_INFO, "apuesta_almacenada", "success");
    log_line_str(&l, "dni", STR_LIT("1"));
    log_line_end(&l);
    log_line_begin_into(&l, &staged, LOG_INFO, "apuesta_recibida", "success");
    log_line_int(&l, "cantidad", 1);
    log_line_end(&l);
    /* Nothing reaches the logger until the staged lines are appended. */
    log_action(LOG_INFO, "before", "success");
    log_flush();
    expect_lines("INFO     action: before | result: success\n");
    log_append_staged(&staged);
    assert_int_equal(staged.len, 0);
    log_flush();
    expect_lines("INFO     action: before | result: success\n"
                 "INFO     action: apuesta_almacenada | result: success | dni: 1\n"
                 "INFO     action: apuesta_recibida | result: success | cantidad: 1\n");
    buf_free(&staged);
}

static int hook_calls;

static void hook(void *ctx)
{
    assert_ptr_equal(ctx, &hook_calls);
    hook_calls++;
}

static void test_pending_hook(void **state)
{
    (void)state;
    hook_calls = 0;
    log_set_pending_hook(hook, &hook_calls);
    log_msg(LOG_INFO, "one");
    assert_int_equal(hook_calls, 1);
    log_msg(LOG_INFO, "two");
    log_action(LOG_INFO, "three", "success");
    assert_int_equal(hook_calls, 1); /* already pending */
    log_flush();
    log_set_level(LOG_ERROR);
    log_msg(LOG_INFO, "disabled"); /* a disabled line adds nothing: no hook */
    assert_int_equal(hook_calls, 1);
    log_set_level(LOG_DEBUG);
    struct buf staged = BUF_INIT;
    struct log_line l;
    log_line_begin_into(&l, &staged, LOG_INFO, "staged", "success");
    log_line_end(&l);
    assert_int_equal(hook_calls, 1); /* staging alone does not touch the logger */
    log_append_staged(&staged);
    assert_int_equal(hook_calls, 2);
    log_flush();
    log_append_staged(&staged); /* empty: nothing to flush, no hook */
    assert_int_equal(hook_calls, 2);
    log_set_pending_hook(NULL, NULL);
    buf_free(&staged);
}

static void test_large_buffer_flushes_itself(void **state)
{
    (void)state;
    /* Without any log_flush, more than 1 MiB of lines reach the file on their own. */
    char value[1000];
    memset(value, 'v', sizeof(value));
    size_t len;
    for (int i = 0; i < 1100; i++) {
        struct log_line l;
        log_line_begin(&l, LOG_INFO, "big", "success");
        log_line_str(&l, "v", str_make(value, sizeof(value)));
        log_line_end(&l);
    }
    char *got = output(&len);
    assert_true(len > (1u << 20));
    assert_int_equal(got[len - 1], '\n'); /* only whole lines were written */
    free(got);
    log_flush();
    got = output(&len);
    size_t line_len = TS_LEN + strlen("INFO     action: big | result: success | v: ") + 1000 + 1;
    assert_int_equal(len, 1100 * line_len);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sanitizing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sanitizing_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staged_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_buffer_flushes_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
