/* The raffle state machine, without sockets: parking, one draw, winners by agency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lottery.h"

/* Opaque connection handles: only their addresses matter. */
static int conn_a, conn_b, conn_c;

static struct bet make_bet(int32_t agency, const char *doc, int32_t number)
{
    struct bet b;

    memset(&b, 0, sizeof(b));
    b.agency = agency;
    b.first_name = STR_LIT("Ana");
    b.last_name = STR_LIT("Perez");
    b.document = str_make(doc, strlen(doc));
    b.birthdate = STR_LIT("1990-01-02");
    b.number = number;
    return b;
}

static void consider(struct lottery *l, int32_t agency, const char *doc, int32_t number)
{
    struct bet b = make_bet(agency, doc, number);

    lottery_consider(l, &b);
}

static void assert_winners(const struct lottery *l, int32_t agency, const char **docs, size_t count)
{
    const struct lottery_winners *w = lottery_winners(l, agency);

    assert_non_null(w);
    assert_int_equal(w->count, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(w->views[i].len, strlen(docs[i]));
        assert_memory_equal(w->views[i].ptr, docs[i], w->views[i].len);
    }
}

static void test_parks_until_all_finished(void **state)
{
    struct lottery l;
    char err[128];

    (void)state;
    lottery_init(&l, 3);
    assert_true(lottery_accepts_bets(&l, 1, err, sizeof(err)));

    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_PARKED);
    assert_ptr_equal(lottery_parked(&l, 1), &conn_a);
    assert_int_equal(lottery_finish(&l, 3, &conn_c, err, sizeof(err)), LOTTERY_PARKED);
    assert_null(lottery_parked(&l, 2));
    assert_false(l.drawn);
    /* Nobody gets winners before the draw. */
    assert_null(lottery_winners(&l, 1));

    assert_false(lottery_accepts_bets(&l, 1, err, sizeof(err)));
    assert_string_equal(err, "agency 1 already finished");
    assert_true(lottery_accepts_bets(&l, 2, err, sizeof(err)));

    assert_int_equal(lottery_finish(&l, 2, &conn_b, err, sizeof(err)), LOTTERY_DRAW_NOW);
    assert_int_equal(l.finished_count, 3);
    lottery_free(&l);
}

static void test_bad_agency(void **state)
{
    struct lottery l;
    char err[128];

    (void)state;
    lottery_init(&l, 2);
    assert_int_equal(lottery_finish(&l, 0, &conn_a, err, sizeof(err)), LOTTERY_BAD_AGENCY);
    assert_string_equal(err, "agency 0 is out of range 1..2");
    assert_int_equal(lottery_finish(&l, -1, &conn_a, err, sizeof(err)), LOTTERY_BAD_AGENCY);
    assert_string_equal(err, "agency -1 is out of range 1..2");
    assert_int_equal(lottery_finish(&l, 3, &conn_a, err, sizeof(err)), LOTTERY_BAD_AGENCY);
    assert_string_equal(err, "agency 3 is out of range 1..2");
    assert_int_equal(l.finished_count, 0);
    assert_false(lottery_accepts_bets(&l, 3, err, sizeof(err)));
    assert_string_equal(err, "agency 3 is out of range 1..2");
    lottery_free(&l);
}

static void test_duplicate_before_draw(void **state)
{
    struct lottery l;
    char err[128];

    (void)state;
    lottery_init(&l, 2);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_PARKED);
    /* A second FINISHED for agency 1 (same or another conn) does not count. */
    assert_int_equal(lottery_finish(&l, 1, &conn_b, err, sizeof(err)), LOTTERY_DUPLICATE);
    assert_string_equal(err, "agency 1 already finished");
    assert_int_equal(l.finished_count, 1);
    assert_ptr_equal(lottery_parked(&l, 1), &conn_a);
    lottery_free(&l);
}

static void test_unpark_keeps_agency_finished(void **state)
{
    struct lottery l;
    char err[128];

    (void)state;
    lottery_init(&l, 2);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_PARKED);
    assert_false(lottery_unpark(&l, 1, &conn_b));
    assert_false(lottery_unpark(&l, 2, &conn_a));
    assert_true(lottery_unpark(&l, 1, &conn_a));
    assert_null(lottery_parked(&l, 1));
    assert_false(lottery_unpark(&l, 1, &conn_a));
    /* The agency reconnects: its new connection waits, without counting twice. */
    assert_int_equal(lottery_finish(&l, 1, &conn_c, err, sizeof(err)), LOTTERY_PARKED);
    assert_int_equal(l.finished_count, 1);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_DUPLICATE);
    assert_int_equal(lottery_finish(&l, 2, &conn_b, err, sizeof(err)), LOTTERY_DRAW_NOW);
    assert_ptr_equal(lottery_take_parked(&l, 1), &conn_c);
    assert_ptr_equal(lottery_take_parked(&l, 2), &conn_b);
    assert_null(lottery_take_parked(&l, 2));
    lottery_free(&l);
}

static void test_winners_per_agency_and_late_finished(void **state)
{
    struct lottery l;
    char err[128];
    const char *one[] = {"100", "102"};
    const char *two[] = {"200"};

    (void)state;
    lottery_init(&l, 3);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_PARKED);
    assert_int_equal(lottery_finish(&l, 2, &conn_b, err, sizeof(err)), LOTTERY_PARKED);

    consider(&l, 1, "100", 7574);
    consider(&l, 1, "101", 7575);
    consider(&l, 2, "200", 7574);
    consider(&l, 1, "102", 7574);
    consider(&l, 2, "201", 0);
    consider(&l, 9, "900", 7574); /* beyond AGENCIES: ignored */
    lottery_mark_drawn(&l);
    assert_true(l.drawn);
    assert_int_equal(l.ignored_bets, 1);

    assert_winners(&l, 1, one, 2);
    assert_winners(&l, 2, two, 1);
    assert_winners(&l, 3, NULL, 0);
    assert_null(lottery_winners(&l, 4));

    /* After the draw: answer at once, bets refused, no second draw. */
    assert_int_equal(lottery_finish(&l, 3, &conn_c, err, sizeof(err)), LOTTERY_ANSWER_NOW);
    assert_null(lottery_parked(&l, 3));
    assert_int_equal(lottery_finish(&l, 1, &conn_c, err, sizeof(err)), LOTTERY_ANSWER_NOW);
    assert_false(lottery_accepts_bets(&l, 3, err, sizeof(err)));
    assert_string_equal(err, "raffle already done");
    assert_int_equal(lottery_draw(&l, "/nonexistent/bets.csv", err, sizeof(err)), -1);
    assert_string_equal(err, "raffle already done");
    assert_winners(&l, 1, one, 2);
    lottery_free(&l);
}

/* Writes `content` to a fresh temporary file; returns its path (static). */
static const char *write_temp(const char *content)
{
    static char path[64];
    int fd;
    size_t len = strlen(content);

    snprintf(path, sizeof(path), "/tmp/tp0-lottery-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static void test_draw_from_file(void **state)
{
    struct lottery l;
    char err[256];
    const char *path = write_temp("1,Ana,\"Perez, A\",30904465,1999-03-17,7574\r\n"
                                  "2,Juan,Gomez,111,1980-01-01,7574\r\n"
                                  "1,Eva,Diaz,222,1981-01-01,1234\r\n"
                                  "2,Luis,Paz,333,1982-01-01,7574\r\n");
    const char *one[] = {"30904465"};
    const char *two[] = {"111", "333"};

    (void)state;
    lottery_init(&l, 2);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_PARKED);
    assert_int_equal(lottery_finish(&l, 2, &conn_b, err, sizeof(err)), LOTTERY_DRAW_NOW);
    assert_int_equal(lottery_draw(&l, path, err, sizeof(err)), 0);
    assert_true(l.drawn);
    assert_winners(&l, 1, one, 1);
    assert_winners(&l, 2, two, 2);
    unlink(path);
    lottery_free(&l);
}

static void test_failed_draw_leaves_lottery_undrawn(void **state)
{
    struct lottery l;
    char err[256];
    const char *path = write_temp("1,Ana,Perez,100,1999-03-17,7574\r\n"
                                  "1,too,few,fields\r\n");

    (void)state;
    lottery_init(&l, 1);
    assert_int_equal(lottery_finish(&l, 1, &conn_a, err, sizeof(err)), LOTTERY_DRAW_NOW);
    assert_int_equal(lottery_draw(&l, path, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_false(l.drawn);
    assert_null(lottery_winners(&l, 1));
    /* Nothing was kept from the rows read before the bad one. */
    assert_int_equal(l.winners[1].count, 0);
    unlink(path);
    lottery_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parks_until_all_finished),
        cmocka_unit_test(test_bad_agency),
        cmocka_unit_test(test_duplicate_before_draw),
        cmocka_unit_test(test_unpark_keeps_agency_finished),
        cmocka_unit_test(test_winners_per_agency_and_late_finished),
        cmocka_unit_test(test_draw_from_file),
        cmocka_unit_test(test_failed_draw_leaves_lottery_undrawn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
