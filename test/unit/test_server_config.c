/* The server's INI + environment configuration. */
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

static const char *env_keys[] = {
    "SERVER_PORT",     "SERVER_IP",    "SERVER_LISTEN_ADDRESS", "SERVER_LISTEN_BACKLOG",
    "LOGGING_LEVEL",   "AGENCIES",     "STORAGE_PATH",          "MAX_FRAME_BYTES",
    "MAX_CONNECTIONS", "IDLE_TIMEOUT", "OUTPUT_HIGH_WATERMARK",
};

static char ini_path[64];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++)
        unsetenv(env_keys[i]);
    ini_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (ini_path[0] != '\0')
        unlink(ini_path);
    return setup(state);
}

static const char *write_ini(const char *content)
{
    int fd;
    size_t len = strlen(content);

    snprintf(ini_path, sizeof(ini_path), "/tmp/tp0-config-XXXXXX");
    fd = mkstemp(ini_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return ini_path;
}

static void test_defaults_without_file(void **state)
{
    struct server_config c;
    char err[512];

    (void)state;
    assert_int_equal(server_config_load(&c, "/nonexistent/config.ini", err, sizeof(err)), 0);
    assert_int_equal(c.port, 12345);
    assert_string_equal(c.server_ip, "server");
    assert_string_equal(c.listen_address, "0.0.0.0");
    assert_int_equal(c.listen_backlog, 5);
    assert_int_equal(c.logging_level, LOG_INFO);
    assert_int_equal(c.agencies, 5);
    assert_string_equal(c.storage_path, "./bets.csv");
    assert_int_equal(c.max_frame_bytes, 1048576);
    assert_int_equal(c.max_connections, 16384);
    assert_int_equal(c.idle_timeout, 30);
    assert_int_equal(c.output_high_watermark, 1048576);
    server_config_free(&c);
}

static void test_file_values(void **state)
{
    struct server_config c;
    char err[512];
    const char *path = write_ini("; the course's format\n"
                                 "[DEFAULT]\n"
                                 "SERVER_PORT = 23456\n"
                                 "SERVER_IP = 10.0.0.1\n"
                                 "server_listen_backlog = 64\n" /* keys ignore case */
                                 "LOGGING_LEVEL = debug\n"
                                 "AGENCIES = 2\n"
                                 "STORAGE_PATH = /data/bets.csv\n"
                                 "IDLE_TIMEOUT = 0\n"
                                 "SOMETHING_ELSE = whatever\n"
                                 "[other]\n"
                                 "SERVER_PORT = not-read\n");

    (void)state;
    assert_int_equal(server_config_load(&c, path, err, sizeof(err)), 0);
    assert_int_equal(c.port, 23456);
    assert_string_equal(c.server_ip, "10.0.0.1");
    assert_int_equal(c.listen_backlog, 64);
    assert_int_equal(c.logging_level, LOG_DEBUG);
    assert_int_equal(c.agencies, 2);
    assert_string_equal(c.storage_path, "/data/bets.csv");
    assert_int_equal(c.idle_timeout, 0);
    assert_int_equal(c.max_connections, 16384); /* untouched default */
    server_config_free(&c);
}

static void test_env_overrides_file(void **state)
{
    struct server_config c;
    char err[512];
    const char *path = write_ini("[DEFAULT]\nSERVER_PORT = 23456\nAGENCIES = 2\n");

    (void)state;
    setenv("SERVER_PORT", "34567", 1);
    setenv("STORAGE_PATH", "/tmp/x.csv", 1);
    setenv("OUTPUT_HIGH_WATERMARK", "65536", 1);
    assert_int_equal(server_config_load(&c, path, err, sizeof(err)), 0);
    assert_int_equal(c.port, 34567);
    assert_int_equal(c.agencies, 2);
    assert_string_equal(c.storage_path, "/tmp/x.csv");
    assert_int_equal(c.output_high_watermark, 65536);
    server_config_free(&c);
}

static void test_bad_file_value_names_key_and_line(void **state)
{
    struct server_config c;
    char err[512];
    char want[256];
    const char *path = write_ini("[DEFAULT]\nSERVER_PORT = 12345\nAGENCIES = cinco\n");

    (void)state;
    assert_int_equal(server_config_load(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s line 3: AGENCIES: 'cinco' is not an integer in 1..100000",
             path);
    assert_string_equal(err, want);
    server_config_free(&c);
}

static void test_bad_env_values(void **state)
{
    struct server_config c;
    char err[512];

    (void)state;
    setenv("SERVER_PORT", "70000", 1);
    assert_int_equal(server_config_load(&c, "/nonexistent.ini", err, sizeof(err)), -1);
    assert_string_equal(err, "environment SERVER_PORT: '70000' is not an integer in 1..65535");
    server_config_free(&c);
    unsetenv("SERVER_PORT");

    setenv("LOGGING_LEVEL", "LOUD", 1);
    assert_int_equal(server_config_load(&c, "/nonexistent.ini", err, sizeof(err)), -1);
    assert_string_equal(err,
                        "environment LOGGING_LEVEL: 'LOUD' is not one of DEBUG, INFO, WARNING, "
                        "ERROR");
    server_config_free(&c);
    unsetenv("LOGGING_LEVEL");

    setenv("STORAGE_PATH", "", 1);
    assert_int_equal(server_config_load(&c, "/nonexistent.ini", err, sizeof(err)), -1);
    assert_string_equal(err, "environment STORAGE_PATH: must not be empty");
    server_config_free(&c);
    unsetenv("STORAGE_PATH");

    setenv("AGENCIES", "0", 1);
    assert_int_equal(server_config_load(&c, "/nonexistent.ini", err, sizeof(err)), -1);
    assert_string_equal(err, "environment AGENCIES: '0' is not an integer in 1..100000");
    server_config_free(&c);
    unsetenv("AGENCIES");

    setenv("IDLE_TIMEOUT", "3 0", 1);
    assert_int_equal(server_config_load(&c, "/nonexistent.ini", err, sizeof(err)), -1);
    assert_string_equal(err, "environment IDLE_TIMEOUT: '3 0' is not an integer in 0..86400");
    server_config_free(&c);
}

static void test_malformed_file(void **state)
{
    struct server_config c;
    char err[512];
    char want[256];
    const char *path = write_ini("[DEFAULT]\nSERVER_PORT 12345\n");

    (void)state;
    assert_int_equal(server_config_load(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s line 2: not a 'key = value' line or section header", path);
    assert_string_equal(err, want);
    server_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_file_value_names_key_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_env_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
