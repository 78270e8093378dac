#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp0/protocol.h"
#include "tp0/util.h"

enum key_kind {
    KEY_INT,    /* an integer in [min, max] */
    KEY_STRING, /* a non-empty string */
    KEY_LEVEL,  /* a logging level name */
};

struct key_spec {
    const char *name;
    enum key_kind kind;
    int64_t min;
    int64_t max;
};

/* Every key the server reads; unknown keys in the file are ignored, as
 * Python's configparser would. */
static const struct key_spec keys[] = {
    {"SERVER_PORT", KEY_INT, 1, 65535},
    {"SERVER_IP", KEY_STRING, 0, 0},
    {"SERVER_LISTEN_ADDRESS", KEY_STRING, 0, 0},
    {"SERVER_LISTEN_BACKLOG", KEY_INT, 1, 65535},
    {"LOGGING_LEVEL", KEY_LEVEL, 0, 0},
    {"AGENCIES", KEY_INT, 1, 100000},
    {"STORAGE_PATH", KEY_STRING, 0, 0},
    /* A FINISHED body is 4 bytes, so smaller caps make no sense. */
    {"MAX_FRAME_BYTES", KEY_INT, 16, INT32_MAX},
    {"MAX_CONNECTIONS", KEY_INT, 1, 1000000},
    {"IDLE_TIMEOUT", KEY_INT, 0, 86400},
    {"OUTPUT_HIGH_WATERMARK", KEY_INT, 1024, INT32_MAX},
};

void server_config_defaults(struct server_config *c)
{
    c->port = 12345;
    c->server_ip = xstrdup("server");
    c->listen_address = xstrdup("0.0.0.0");
    c->listen_backlog = 5;
    c->logging_level = LOG_INFO;
    c->agencies = 5;
    c->storage_path = xstrdup("./bets.csv");
    c->max_frame_bytes = PROTO_DEFAULT_MAX_BODY;
    c->max_connections = 16384;
    c->idle_timeout = 30;
    c->output_high_watermark = 1u << 20;
}

void server_config_free(struct server_config *c)
{
    free(c->server_ip);
    free(c->listen_address);
    free(c->storage_path);
    c->server_ip = NULL;
    c->listen_address = NULL;
    c->storage_path = NULL;
}

static void set_string(char **dst, const char *value)
{
    free(*dst);
    *dst = xstrdup(value);
}

/* Stores `value` of key `spec` into c; on a bad value writes why into err. */
static bool apply(struct server_config *c, const struct key_spec *spec, const char *value,
                  char *err, size_t errlen)
{
    int64_t n = 0;

    switch (spec->kind) {
    case KEY_STRING:
        if (value[0] == '\0') {
            snprintf(err, errlen, "%s: must not be empty", spec->name);
            return false;
        }
        break;
    case KEY_LEVEL: {
        enum log_level level;

        if (!log_level_parse(value, &level)) {
            snprintf(err, errlen, "%s: '%s' is not one of DEBUG, INFO, WARNING, ERROR", spec->name,
                     value);
            return false;
        }
        c->logging_level = level;
        return true;
    }
    case KEY_INT:
        if (!str_to_i64(str_make(value, strlen(value)), spec->min, spec->max, &n)) {
            snprintf(err, errlen, "%s: '%s' is not an integer in %lld..%lld", spec->name, value,
                     (long long)spec->min, (long long)spec->max);
            return false;
        }
        break;
    }

    if (strcmp(spec->name, "SERVER_PORT") == 0)
        c->port = (int)n;
    else if (strcmp(spec->name, "SERVER_IP") == 0)
        set_string(&c->server_ip, value);
    else if (strcmp(spec->name, "SERVER_LISTEN_ADDRESS") == 0)
        set_string(&c->listen_address, value);
    else if (strcmp(spec->name, "SERVER_LISTEN_BACKLOG") == 0)
        c->listen_backlog = (int)n;
    else if (strcmp(spec->name, "AGENCIES") == 0)
        c->agencies = (int32_t)n;
    else if (strcmp(spec->name, "STORAGE_PATH") == 0)
        set_string(&c->storage_path, value);
    else if (strcmp(spec->name, "MAX_FRAME_BYTES") == 0)
        c->max_frame_bytes = (uint32_t)n;
    else if (strcmp(spec->name, "MAX_CONNECTIONS") == 0)
        c->max_connections = (int)n;
    else if (strcmp(spec->name, "IDLE_TIMEOUT") == 0)
        c->idle_timeout = (int)n;
    else if (strcmp(spec->name, "OUTPUT_HIGH_WATERMARK") == 0)
        c->output_high_watermark = (size_t)n;
    return true;
}

struct ini_ctx {
    struct server_config *config;
    char *err;
    size_t errlen;
    bool failed;
};

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;

    /* Keys before any section header count as [DEFAULT]; other sections are
     * not the server's. */
    if (section[0] != '\0' && strcasecmp(section, "DEFAULT") != 0)
        return 1;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcasecmp(name, keys[i].name) != 0)
            continue;
        if (ctx->failed)
            return 0; /* keep the first error's message */
        if (!apply(ctx->config, &keys[i], value, ctx->err, ctx->errlen)) {
            ctx->failed = true;
            return 0;
        }
        return 1;
    }
    return 1;
}

static int load_file(struct server_config *c, const char *path, char *err, size_t errlen)
{
    struct ini_ctx ctx = {c, err, errlen, false};
    char why[512];
    FILE *f;
    int rc;

    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0; /* no file: defaults and environment apply */
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    rc = ini_parse_file(f, ini_handler_cb, &ctx);
    (void)fclose(f); /* opened read-only: nothing to lose on close */
    if (rc == 0)
        return 0;
    if (ctx.failed) {
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s line %d: %s", path, rc, why);
    } else if (rc > 0) {
        snprintf(err, errlen, "%s line %d: not a 'key = value' line or section header", path, rc);
    } else {
        snprintf(err, errlen, "cannot read %s", path);
    }
    return -1;
}

static int load_env(struct server_config *c, char *err, size_t errlen)
{
    char why[512];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *value = getenv(keys[i].name);

        if (value == NULL)
            continue;
        if (!apply(c, &keys[i], value, why, sizeof(why))) {
            snprintf(err, errlen, "environment %s", why);
            return -1;
        }
    }
    return 0;
}

int server_config_load(struct server_config *c, const char *path, char *err, size_t errlen)
{
    server_config_defaults(c);
    if (load_file(c, path, err, errlen) != 0)
        return -1;
    return load_env(c, err, errlen);
}
