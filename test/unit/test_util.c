/* Unit tests of util (strict integer parsing, formatting) and buf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tp0/buf.h"
#include "tp0/util.h"

static bool parse(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return str_to_i64(str_make(s, strlen(s)), min, max, out);
}

static void test_str_to_i64(void **state)
{
    (void)state;
    int64_t v = 42;
    assert_true(parse("0", INT64_MIN, INT64_MAX, &v));
    assert_int_equal(v, 0);
    assert_true(parse("-0", INT64_MIN, INT64_MAX, &v));
    assert_int_equal(v, 0);
    assert_true(parse("007574", INT64_MIN, INT64_MAX, &v));
    assert_int_equal(v, 7574);
    assert_true(parse("9223372036854775807", INT64_MIN, INT64_MAX, &v));
    assert_true(v == INT64_MAX);
    assert_true(parse("-9223372036854775808", INT64_MIN, INT64_MAX, &v));
    assert_true(v == INT64_MIN);
    assert_true(parse("2147483647", 0, INT32_MAX, &v));
    assert_int_equal(v, INT32_MAX);

    v = 42;
    static const char *const bad[] = {
        "",
        "-",
        "+1",
        " 1",
        "1 ",
        "1a",
        "0x10",
        "1.0",
        "--1",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(parse(bad[i], INT64_MIN, INT64_MAX, &v));
    }
    assert_false(parse("2147483648", 0, INT32_MAX, &v));
    assert_false(parse("-1", 0, INT32_MAX, &v));
    assert_int_equal(v, 42); /* untouched on failure */

    /* The view's length is honoured: no NUL needed, bytes after it are ignored. */
    assert_true(str_to_i64(str_make("123xyz", 3), INT64_MIN, INT64_MAX, &v));
    assert_int_equal(v, 123);
    assert_false(str_to_i64(str_make("12\0"
                                     "3",
                                     4),
                            INT64_MIN, INT64_MAX, &v));
}

static void test_fmt_i64(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {-7, "-7"},
        {10, "10"},
        {7574, "7574"},
        {INT32_MAX, "2147483647"},
        {INT32_MIN, "-2147483648"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[I64_DEC_MAX];
        size_t n = fmt_i64(out, cases[i].v);
        assert_int_equal(n, strlen(cases[i].s));
        assert_memory_equal(out, cases[i].s, n);
        assert_int_equal(i64_dec_len(cases[i].v), n);
    }
    for (int64_t v = -100000; v <= 100000; v += 7) {
        char out[I64_DEC_MAX], want[32];
        size_t n = fmt_i64(out, v);
        int m = snprintf(want, sizeof(want), "%lld", (long long)v);
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(out, want, n);
        assert_int_equal(i64_dec_len(v), n);
    }
}

static void test_str_eq(void **state)
{
    (void)state;
    assert_true(str_eq(STR_LIT("abc"), "abc"));
    assert_false(str_eq(STR_LIT("abc"), "ab"));
    assert_false(str_eq(STR_LIT("ab"), "abc"));
    assert_true(str_eq(str_make(NULL, 0), ""));
}

static void test_buf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    assert_null(b.data);
    buf_append(&b, "ab", 2);
    buf_append_byte(&b, 'c');
    buf_append_u32le(&b, 0x04030201u);
    buf_put_u32le_at(&b, 1, 0xddccbbaau);
    static const uint8_t expected[] = {'a', 0xaa, 0xbb, 0xcc, 0xdd, 3, 4};
    assert_int_equal(b.len, sizeof(expected));
    assert_memory_equal(b.data, expected, sizeof(expected));
    for (int i = 0; i < 100000; i++) {
        buf_append_byte(&b, (uint8_t)i);
    }
    assert_int_equal(b.len, sizeof(expected) + 100000);
    assert_int_equal(b.data[sizeof(expected) + 99999], (uint8_t)99999);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    uint8_t *p = buf_reserve(&b, 10);
    assert_ptr_equal(p, b.data);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
}

static void test_xstrdup(void **state)
{
    (void)state;
    char *s = xstrdup("héllo");
    assert_string_equal(s, "héllo");
    free(s);
    void *z = xmalloc(0);
    assert_non_null(z);
    free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_to_i64), cmocka_unit_test(test_fmt_i64),
        cmocka_unit_test(test_str_eq),     cmocka_unit_test(test_buf),
        cmocka_unit_test(test_xstrdup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
