/* Unit tests of bet validation: every rule, with the exact reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tp0/bet.h"

static struct str S(const char *s) {
    return str_make(s, strlen(s));
}

static struct bet
valid_bet(void)
{
    struct bet b = {
        .agency = 1,
        .first_name = STR_LIT("Santiago Lionel"),
        .last_name = STR_LIT("Lorca"),
        .document = STR_LIT("30904465"),
        .birthdate = STR_LIT("1999-03-17"),
        .number = 7574,
    };
    return b;
}

static void expect_invalid(const struct bet *b, const char *reason)
{
    char err[256] = "";
    assert_false(bet_validate(b, err, sizeof(err)));
    assert_string_equal(err, reason);
}

static void expect_valid(const struct bet *b)
{
    char err[256] = "";
    if (!bet_validate(b, err, sizeof(err))) {
        fail_msg("unexpectedly invalid: %s", err);
    }
}

static void test_valid_bets(void **state)
{
    (void)state;
    struct bet b = valid_bet();
    expect_valid(&b);
    assert_true(bet_has_won(&b));
    b.first_name = S("José María Ñandú");
    b.last_name = S("O'Brien-Müller 🎲");
    b.document = S("0");
    b.number = 0;
    assert_false(bet_has_won(&b));
    expect_valid(&b);
    b.document = S("2147483647");
    b.number = INT32_MAX;
    b.agency = INT32_MAX;
    expect_valid(&b);
    b.document = S("0000000001");
    expect_valid(&b);
    char name[BET_MAX_NAME];
    memset(name, 'a', sizeof(name));
    b.first_name = str_make(name, BET_MAX_NAME);
    expect_valid(&b);
}

static void test_agency_and_number(void **state)
{
    (void)state;
    struct bet b = valid_bet();
    b.agency = 0;
    expect_invalid(&b, "agency 0 is not positive");
    b.agency = -3;
    expect_invalid(&b, "agency -3 is not positive");
    b = valid_bet();
    b.number = -1;
    expect_invalid(&b, "number -1 is negative");
    b.number = INT32_MIN;
    expect_invalid(&b, "number -2147483648 is negative");
}

static void test_names(void **state)
{
    (void)state;
    struct bet b = valid_bet();
    b.first_name = S("");
    expect_invalid(&b, "first_name is empty");
    b = valid_bet();
    b.last_name = S("");
    expect_invalid(&b, "last_name is empty");

    b = valid_bet();
    b.first_name = str_make("a\0b", 3);
    expect_invalid(&b, "first_name 'a' contains the control character 0x00 at byte 1");
    b.first_name = S("a\nb");
    expect_invalid(&b, "first_name 'a\nb' contains the control character 0x0a at byte 1");
    b.first_name = S("ab\r");
    expect_invalid(&b, "first_name 'ab\r' contains the control character 0x0d at byte 2");
    b.first_name = S("\x7f");
    expect_invalid(&b, "first_name '\x7f' contains the control character 0x7f at byte 0");
    b.first_name = S("tab\there");
    expect_invalid(&b, "first_name 'tab\there' contains the control character 0x09 at byte 3");

    b = valid_bet();
    b.last_name = S("\xff");
    expect_invalid(&b, "last_name '\xff' is not valid UTF-8");
    b.last_name = S("Jos\xe9"); /* Latin-1, not UTF-8 */
    expect_invalid(&b, "last_name 'Jos\xe9' is not valid UTF-8");

    char name[BET_MAX_NAME + 1];
    memset(name, 'a', sizeof(name));
    b = valid_bet();
    b.first_name = str_make(name, sizeof(name));
    expect_invalid(
        &b, "first_name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"
            " is longer than 256 bytes");
}

static void test_utf8(void **state)
{
    (void)state;
    static const char *const good[] = {
        "",
        "abc",
        "Ñandú",
        "€",
        "\xf0\x9f\x8e\xb2" /* U+1F3B2 */,
        "\xef\xbf\xbf" /* U+FFFF */,
        "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
        "\xed\x9f\xbf" /* U+D7FF */,
        "\xc2\x80",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(utf8_valid(good[i], strlen(good[i])));
    }
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xbf",             /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xe0\x9f\xbf",     /* overlong 3-byte (U+07FF) */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte (U+FFFF) */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* lead byte beyond U+10FFFF */
        "\xff",
        "\xfe",
        "\xc3",         /* truncated 2-byte */
        "\xe2\x82",     /* truncated 3-byte */
        "\xf0\x9f\x8e", /* truncated 4-byte */
        "a\xc3(",       /* bad continuation */
        "\xe2\x28\xa1", /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (utf8_valid(bad[i], strlen(bad[i]))) {
            fail_msg("bad UTF-8 case %zu accepted", i);
        }
    }
    /* Truncation is judged by the given length, not by a NUL. */
    assert_false(utf8_valid("\xc3\xb1", 1));
    assert_true(utf8_valid("\xc3\xb1", 2));
}

static void test_document(void **state)
{
    (void)state;
    struct bet b = valid_bet();
    b.document = S("");
    expect_invalid(&b, "document '' is not 1 to 10 decimal digits");
    b.document = S("12a");
    expect_invalid(&b, "document '12a' is not 1 to 10 decimal digits");
    b.document = S("-5");
    expect_invalid(&b, "document '-5' is not 1 to 10 decimal digits");
    b.document = S("+5");
    expect_invalid(&b, "document '+5' is not 1 to 10 decimal digits");
    b.document = S(" 5");
    expect_invalid(&b, "document ' 5' is not 1 to 10 decimal digits");
    b.document = S("12345678901");
    expect_invalid(&b, "document '12345678901' is not 1 to 10 decimal digits");
    b.document = S("2147483648");
    expect_invalid(&b, "document 2147483648 exceeds 2147483647");
    b.document = S("9999999999");
    expect_invalid(&b, "document 9999999999 exceeds 2147483647");
}

static void test_dates(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2024-02-29", "2000-02-29", "1900-01-01", "2100-12-31", "2023-01-31",
        "2023-04-30", "2023-12-31", "1999-03-17", "2023-02-28",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(date_valid(S(good[i])));
        struct bet b = valid_bet();
        b.birthdate = S(good[i]);
        expect_valid(&b);
    }
    static const char *const bad[] = {
        "2023-02-29", "2023-02-30",  "1900-02-29", "2100-02-29", "2023-04-31", "2023-13-01",
        "2023-00-10", "2023-01-00",  "2023-01-32", "2023-1-01",  "2023/01/01", "20230101",
        "",           "2023-01-011", "2023-0a-01", "-023-01-01", "2023-01- 1", "abcd-ef-gh",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (date_valid(S(bad[i]))) {
            fail_msg("date %s accepted", bad[i]);
        }
    }
    struct bet b = valid_bet();
    b.birthdate = S("2023-02-30");
    expect_invalid(&b, "birthdate 2023-02-30 is not a calendar date");
    b.birthdate = S("2023-02-29");
    expect_invalid(&b, "birthdate 2023-02-29 is not a calendar date");
    b.birthdate = S("17/03/1999");
    expect_invalid(&b, "birthdate 17/03/1999 is not a calendar date");
    b.birthdate = S("1899-12-31");
    expect_invalid(&b, "birthdate 1899-12-31 is outside 1900-01-01..2100-12-31");
    b.birthdate = S("2101-01-01");
    expect_invalid(&b, "birthdate 2101-01-01 is outside 1900-01-01..2100-12-31");
    b.birthdate = S("0000-01-01");
    expect_invalid(&b, "birthdate 0000-01-01 is outside 1900-01-01..2100-12-31");
}

static void test_err_truncation(void **state)
{
    (void)state;
    /* A small err buffer truncates the reason but stays NUL-terminated. */
    struct bet b = valid_bet();
    b.birthdate = S("2023-02-30");
    char err[10];
    memset(err, 'x', sizeof(err));
    assert_false(bet_validate(&b, err, sizeof(err)));
    assert_string_equal(err, "birthdate");
}

static void test_batch(void **state)
{
    (void)state;
    struct bet_batch batch;
    bet_batch_init(&batch);
    for (int i = 0; i < 1000; i++) {
        struct bet *b = bet_batch_push(&batch);
        *b = valid_bet();
        b->number = i;
    }
    assert_int_equal(batch.count, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(batch.bets[i].number, i);
    }
    size_t cap = batch.cap;
    struct bet *array = batch.bets;
    bet_batch_clear(&batch);
    assert_int_equal(batch.count, 0);
    for (int i = 0; i < 1000; i++) {
        bet_batch_push(&batch)->number = i;
    }
    assert_int_equal(batch.cap, cap);
    assert_ptr_equal(batch.bets, array);
    bet_batch_free(&batch);
    assert_null(batch.bets);
    assert_int_equal(batch.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_bets),     cmocka_unit_test(test_agency_and_number),
        cmocka_unit_test(test_names),          cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_document),       cmocka_unit_test(test_dates),
        cmocka_unit_test(test_err_truncation), cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
