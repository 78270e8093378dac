/* The client's configuration: Go durations, the YAML file, CLI_* overrides and
 * the errors that name the bad key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static const char *const env_names[] = {
    "CLI_ID",           "CLI_SERVER_ADDRESS",  "CLI_LOOP_AMOUNT", "CLI_LOOP_PERIOD",
    "CLI_LOG_LEVEL",    "CLI_BATCH_MAXAMOUNT", "CLI_MODE",        "CLI_DATASET",
    "CLI_BATCH_WINDOW", "CLI_CONNECT_TIMEOUT",
};

/* ---- durations --------------------------------------------------------------- */

static void check_parse(const char *text, int64_t want)
{
    int64_t got = -12345;
    if (!duration_parse(text, &got)) {
        fail_msg("duration_parse(\"%s\") failed", text);
    }
    if (got != want) {
        fail_msg("duration_parse(\"%s\") = %lld, want %lld", text, (long long)got, (long long)want);
    }
}

static void test_duration_parse(void **state)
{
    (void)state;
    const int64_t ms = NS_PER_MS, s = NS_PER_SEC;
    check_parse("5s", 5 * s);
    check_parse("100ms", 100 * ms);
    check_parse("1m30s", 90 * s);
    check_parse("0.5s", 500 * ms);
    check_parse(".5s", 500 * ms);
    check_parse("1.s", 1 * s);
    check_parse("1h", 3600 * s);
    check_parse("2h45m", (2 * 3600 + 45 * 60) * s);
    check_parse("1.5h", 5400 * s);
    check_parse("0", 0);
    check_parse("0s", 0);
    check_parse("+5s", 5 * s);
    check_parse("-1.5h", -5400 * s);
    check_parse("1ns", 1);
    check_parse("1us", 1000);
    check_parse("1\xc2\xb5s", 1000); /* micro sign */
    check_parse("1\xce\xbcs", 1000); /* Greek mu */
    check_parse("1h2m3s4ms5us6ns", 3723 * s + 4 * ms + 5006);
    check_parse("9223372036854775807ns", INT64_MAX);
    check_parse("-9223372036854775808ns", INT64_MIN);
    check_parse("0.100000000000000000000001s", 100 * ms); /* extra digits ignored */
}

static void test_duration_parse_rejects(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "5",
        "s",
        "5x",
        "abc",
        ".",
        ".s",
        "-",
        "+",
        "1.2",
        "5 s",
        " 5s",
        "5s ",
        "1e3s",
        "ms5",
        "5S",
        "1d",
        "--5s",
        "9223372036854775808ns",
        "2562048h",
        "99999999999999999999s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 42;
        if (duration_parse(bad[i], &v)) {
            fail_msg("duration_parse(\"%s\") accepted it as %lld", bad[i], (long long)v);
        }
        assert_int_equal(v, 42); /* untouched on failure */
    }
}

static void check_format(int64_t ns, const char *want)
{
    char out[DURATION_STR_MAX];
    assert_string_equal(duration_format(ns, out), want);
}

static void test_duration_format(void **state)
{
    (void)state;
    const int64_t ms = NS_PER_MS, s = NS_PER_SEC;
    check_format(5 * s, "5s");
    check_format(100 * ms, "100ms");
    check_format(90 * s, "1m30s");
    check_format(500 * ms, "500ms");
    check_format(3600 * s, "1h0m0s");
    check_format(0, "0s");
    check_format(1, "1ns");
    check_format(1500, "1.5\xc2\xb5s");
    check_format(1500 * ms, "1.5s");
    check_format(2 * s + 1, "2.000000001s");
    check_format(-5 * s, "-5s");
    check_format(3723 * s + 500 * ms, "1h2m3.5s");
    check_format(INT64_MAX, "2562047h47m16.854775807s");
    check_format(INT64_MIN, "-2562047h47m16.854775808s");
}

static void test_duration_round_trip(void **state)
{
    (void)state;
    const char *texts[] = {"5s", "100ms", "1m30s", "1h0m0s", "1.5\xc2\xb5s", "2h3m4.005s", "0s"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int64_t ns;
        char out[DURATION_STR_MAX];
        assert_true(duration_parse(texts[i], &ns));
        assert_string_equal(duration_format(ns, out), texts[i]);
    }
}

/* ---- the configuration ----------------------------------------------------- */

struct fixture {
    char dir[64];
    char old_cwd[4096];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/tp0-client-config-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_non_null(getcwd(f->old_cwd, sizeof(f->old_cwd)));
    assert_int_equal(chdir(f->dir), 0);
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
        unsetenv(env_names[i]);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink("config.yaml");
    unlink("other.yaml");
    assert_int_equal(chdir(f->old_cwd), 0);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Loads and expects failure whose message holds every given fragment. */
static void expect_error(const char *path, const char *fragment1, const char *fragment2)
{
    struct client_config cfg;
    char err[512] = "";
    if (config_load(&cfg, path, err, sizeof(err)) == 0) {
        config_free(&cfg);
        fail_msg("config_load succeeded; expected an error with '%s'", fragment1);
    }
    if (strstr(err, fragment1) == NULL || (fragment2 != NULL && strstr(err, fragment2) == NULL)) {
        fail_msg("error '%s' lacks '%s' / '%s'", err, fragment1, fragment2 ? fragment2 : "");
    }
}

static const char full_yaml[] = "id: 3\n"
                                "mode: echo\n"
                                "dataset: data/mine.csv\n"
                                "server:\n"
                                "  address: \"example:4000\"\n"
                                "loop:\n"
                                "  amount: 7\n"
                                "  period: \"1m30s\"\n"
                                "log:\n"
                                "  level: \"debug\"\n"
                                "batch:\n"
                                "  maxAmount: 20\n"
                                "  window: 4\n"
                                "connect:\n"
                                "  timeout: 2s\n";

static void test_defaults_from_env_only(void **state)
{
    (void)state;
    /* No ./config.yaml: the defaults and the environment apply. */
    setenv("CLI_ID", "2", 1);
    struct client_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.id, 2);
    assert_int_equal(cfg.mode, MODE_BETS);
    assert_string_equal(cfg.server_address, "server:12345");
    assert_string_equal(cfg.server_host, "server");
    assert_string_equal(cfg.server_port, "12345");
    assert_int_equal(cfg.loop_amount, 5);
    assert_int_equal(cfg.loop_period_ns, 5 * NS_PER_SEC);
    assert_string_equal(cfg.log_level_name, "INFO");
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.batch_max_amount, CONFIG_DEFAULT_BATCH_MAX);
    assert_int_equal(cfg.batch_window, CONFIG_DEFAULT_BATCH_WINDOW);
    assert_int_equal(cfg.connect_timeout_ns, 30 * NS_PER_SEC);
    assert_string_equal(cfg.dataset, "datasets/agency-2.csv");
    assert_false(cfg.dataset_explicit);
    config_free(&cfg);
}

static void test_yaml_file(void **state)
{
    (void)state;
    write_file("config.yaml", full_yaml);
    struct client_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.id, 3);
    assert_int_equal(cfg.mode, MODE_ECHO);
    assert_string_equal(cfg.dataset, "data/mine.csv");
    assert_true(cfg.dataset_explicit);
    assert_string_equal(cfg.server_host, "example");
    assert_string_equal(cfg.server_port, "4000");
    assert_int_equal(cfg.loop_amount, 7);
    assert_int_equal(cfg.loop_period_ns, 90 * NS_PER_SEC);
    assert_string_equal(cfg.log_level_name, "debug"); /* printed as configured */
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.batch_max_amount, 20);
    assert_int_equal(cfg.batch_window, 4);
    assert_int_equal(cfg.connect_timeout_ns, 2 * NS_PER_SEC);
    config_free(&cfg);
}

static void test_env_overrides_file(void **state)
{
    (void)state;
    write_file("other.yaml", full_yaml);
    setenv("CLI_ID", "9", 1);
    setenv("CLI_SERVER_ADDRESS", "[::1]:5000", 1);
    setenv("CLI_LOOP_AMOUNT", "0", 1);
    setenv("CLI_LOOP_PERIOD", "0.5s", 1);
    setenv("CLI_LOG_LEVEL", "WARNING", 1);
    setenv("CLI_BATCH_MAXAMOUNT", "1", 1);
    setenv("CLI_BATCH_WINDOW", "100", 1);
    setenv("CLI_CONNECT_TIMEOUT", "0", 1);
    setenv("CLI_MODE", "BETS", 1);
    setenv("CLI_DATASET", "x.csv", 1);
    struct client_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, "other.yaml", err, sizeof(err)), 0);
    assert_int_equal(cfg.id, 9);
    assert_string_equal(cfg.server_address, "[::1]:5000");
    assert_string_equal(cfg.server_host, "::1");
    assert_string_equal(cfg.server_port, "5000");
    assert_int_equal(cfg.loop_amount, 0);
    assert_int_equal(cfg.loop_period_ns, 500 * NS_PER_MS);
    assert_int_equal(cfg.log_level, LOG_WARNING);
    assert_int_equal(cfg.batch_max_amount, 1);
    assert_int_equal(cfg.batch_window, 100);
    assert_int_equal(cfg.connect_timeout_ns, 0);
    assert_int_equal(cfg.mode, MODE_BETS);
    assert_string_equal(cfg.dataset, "x.csv");
    config_free(&cfg);
}

static void test_empty_env_counts_as_unset(void **state)
{
    (void)state;
    write_file("config.yaml", full_yaml);
    setenv("CLI_LOOP_AMOUNT", "", 1);
    struct client_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.loop_amount, 7);
    config_free(&cfg);
}

static void test_files(void **state)
{
    (void)state;
    setenv("CLI_ID", "1", 1);
    /* An explicitly named file must exist. */
    expect_error("missing.yaml", "missing.yaml", "No such file");
    /* Unknown keys are errors, and say which. */
    write_file("config.yaml", "id: 1\nloop:\n  amount: 1\n  perod: 5s\n");
    expect_error(NULL, "perod", NULL);
    write_file("config.yaml", "colour: blue\n");
    expect_error(NULL, "colour", NULL);
    /* A mapping where a value belongs. */
    write_file("config.yaml", "loop:\n  period:\n    a: 1\n");
    expect_error(NULL, "config.yaml", "period");
    /* Not YAML at all. */
    write_file("config.yaml", "server: [unclosed\n");
    expect_error(NULL, "config.yaml", NULL);
    /* An empty file is an empty configuration. */
    write_file("config.yaml", "");
    struct client_config cfg;
    char err[256];
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    config_free(&cfg);
}

static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    setenv("CLI_ID", "1", 1);
    static const struct {
        const char *env;
        const char *value;
        const char *key;
    } cases[] = {
        {"CLI_ID", "0", "id"},
        {"CLI_ID", "abc", "id"},
        {"CLI_ID", "2147483648", "id"},
        {"CLI_SERVER_ADDRESS", "server", "server.address"},
        {"CLI_SERVER_ADDRESS", "server:", "server.address"},
        {"CLI_SERVER_ADDRESS", "server:0", "server.address"},
        {"CLI_SERVER_ADDRESS", "server:65536", "server.address"},
        {"CLI_SERVER_ADDRESS", ":80", "server.address"},
        {"CLI_LOOP_AMOUNT", "-1", "loop.amount"},
        {"CLI_LOOP_AMOUNT", "5x", "loop.amount"},
        {"CLI_LOOP_PERIOD", "abc", "loop.period"},
        {"CLI_LOOP_PERIOD", "5", "loop.period"},
        {"CLI_LOOP_PERIOD", "-1s", "loop.period"},
        {"CLI_LOG_LEVEL", "loud", "log.level"},
        {"CLI_BATCH_MAXAMOUNT", "0", "batch.maxAmount"},
        {"CLI_BATCH_MAXAMOUNT", "many", "batch.maxAmount"},
        {"CLI_BATCH_WINDOW", "0", "batch.window"},
        {"CLI_BATCH_WINDOW", "5000", "batch.window"},
        {"CLI_CONNECT_TIMEOUT", "soon", "connect.timeout"},
        {"CLI_MODE", "both", "mode"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv(cases[i].env, cases[i].value, 1);
        char key[64];
        (void)snprintf(key, sizeof(key), "%s:", cases[i].key);
        /* The message names the key, the value and where it came from. */
        expect_error(NULL, key, cases[i].env);
        expect_error(NULL, cases[i].value, NULL);
        unsetenv(cases[i].env);
        setenv("CLI_ID", "1", 1);
    }
    /* From the file, the file is named as the source. */
    write_file("config.yaml", "loop:\n  period: forever\n");
    expect_error(NULL, "loop.period:", "./config.yaml");
    /* No id anywhere. */
    unsetenv("CLI_ID");
    unlink("config.yaml");
    expect_error(NULL, "id:", "CLI_ID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_parse_rejects),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_duration_round_trip),
        cmocka_unit_test_setup_teardown(test_defaults_from_env_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_env_counts_as_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_name_the_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
