/* The client's configuration: YAML (libcyaml), then CLI_* variables, then checks. */
#include "config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp0/buf.h"
#include "tp0/util.h"

/* ---- Go durations ---------------------------------------------------------- */

#define DUR_LIMIT (UINT64_C(1) << 63) /* |INT64_MIN|: the largest magnitude */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Nanoseconds per unit, or 0 for an unknown unit. µs is accepted both as the
 * micro sign U+00B5 and as the Greek mu U+03BC, as Go does. */
static uint64_t duration_unit(const char *u, size_t len)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000},
        {"\xce\xbcs", 1000},
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", UINT64_C(60) * 1000000000},
        {"h", UINT64_C(3600) * 1000000000},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0) {
            return units[i].ns;
        }
    }
    return 0;
}

bool duration_parse(const char *s, int64_t *ns_out)
{
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *ns_out = 0;
        return true;
    }
    if (*s == '\0') {
        return false;
    }
    uint64_t total = 0;
    while (*s != '\0') {
        if (*s != '.' && !is_digit(*s)) {
            return false;
        }
        /* The integer part: overflow is an error. */
        uint64_t v = 0;
        const char *start = s;
        while (is_digit(*s)) {
            if (v > DUR_LIMIT / 10) {
                return false;
            }
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > DUR_LIMIT) {
                return false;
            }
            s++;
        }
        bool have_int = s != start;
        /* The fraction: digits beyond what fits are ignored, as in Go. */
        uint64_t frac = 0;
        double scale = 1;
        bool have_frac = false;
        if (*s == '.') {
            s++;
            start = s;
            bool full = false;
            while (is_digit(*s)) {
                if (!full) {
                    uint64_t next = frac * 10 + (uint64_t)(*s - '0');
                    if (frac > (DUR_LIMIT - 1) / 10 || next > DUR_LIMIT) {
                        full = true;
                    } else {
                        frac = next;
                        scale *= 10;
                    }
                }
                s++;
            }
            have_frac = s != start;
        }
        if (!have_int && !have_frac) {
            return false; /* "." or ".s" */
        }
        const char *unit_start = s;
        while (*s != '\0' && *s != '.' && !is_digit(*s)) {
            s++;
        }
        uint64_t unit = duration_unit(unit_start, (size_t)(s - unit_start));
        if (unit == 0) {
            return false; /* missing or unknown unit */
        }
        if (v > DUR_LIMIT / unit) {
            return false;
        }
        v *= unit;
        if (frac > 0) {
            /* Go computes the fraction in floating point too: 0.5s is 500ms. */
            v += (uint64_t)((double)frac * ((double)unit / scale));
            if (v > DUR_LIMIT) {
                return false;
            }
        }
        total += v;
        if (total > DUR_LIMIT) {
            return false;
        }
    }
    if (neg) {
        *ns_out = total == DUR_LIMIT ? INT64_MIN : -(int64_t)total;
    } else {
        if (total > (uint64_t)INT64_MAX) {
            return false;
        }
        *ns_out = (int64_t)total;
    }
    return true;
}

/* Writes v's last `prec` decimal digits backwards before *w as a fraction
 * (".5", trailing zeros dropped, nothing when all are zero); returns v / 10^prec. */
static uint64_t fmt_frac(char **w, uint64_t v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        unsigned digit = (unsigned)(v % 10);
        print = print || digit != 0;
        if (print) {
            *--*w = (char)('0' + digit);
        }
        v /= 10;
    }
    if (print) {
        *--*w = '.';
    }
    return v;
}

static void fmt_int(char **w, uint64_t v)
{
    do {
        *--*w = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
}

char *duration_format(int64_t ns, char out[DURATION_STR_MAX])
{
    char tmp[DURATION_STR_MAX];
    char *end = tmp + sizeof(tmp) - 1;
    char *w = end;
    *w = '\0';
    bool neg = ns < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    if (u < (uint64_t)NS_PER_SEC) {
        /* Under a second: one unit (ns, µs or ms) with a fraction. */
        int prec = 0;
        *--w = 's';
        if (u == 0) {
            *--w = '0';
        } else {
            if (u < 1000) {
                *--w = 'n';
            } else if (u < 1000000) {
                prec = 3;
                *--w = '\xb5'; /* U+00B5, the micro sign, in UTF-8 */
                *--w = '\xc2';
            } else {
                prec = 6;
                *--w = 'm';
            }
            u = fmt_frac(&w, u, prec);
            fmt_int(&w, u);
        }
    } else {
        /* Hours, minutes and seconds: 1h0m0s, 1m30s, 2.5s. */
        *--w = 's';
        u = fmt_frac(&w, u, 9);
        fmt_int(&w, u % 60);
        u /= 60;
        if (u > 0) {
            *--w = 'm';
            fmt_int(&w, u % 60);
            u /= 60;
            if (u > 0) {
                *--w = 'h';
                fmt_int(&w, u);
            }
        }
    }
    if (neg) {
        *--w = '-';
    }
    memcpy(out, w, (size_t)(end - w) + 1);
    return out;
}

/* ---- The YAML file ----------------------------------------------------------- */

/* Every value is read as a string so that the file and the environment go
 * through the same checks and error messages. */
struct yaml_server {
    char *address;
};
struct yaml_loop {
    char *amount;
    char *period;
};
struct yaml_log {
    char *level;
};
struct yaml_batch {
    char *max_amount;
    char *window;
};
struct yaml_connect {
    char *timeout;
};
struct yaml_root {
    char *id;
    char *mode;
    char *dataset;
    struct yaml_server server;
    struct yaml_loop loop;
    struct yaml_log log;
    struct yaml_batch batch;
    struct yaml_connect connect;
};

#define OPT_STR(key, type, member)                                                                 \
    CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, type, member, 0,         \
                           CYAML_UNLIMITED)

static const cyaml_schema_field_t server_fields[] = {
    OPT_STR("address", struct yaml_server, address),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t loop_fields[] = {
    OPT_STR("amount", struct yaml_loop, amount),
    OPT_STR("period", struct yaml_loop, period),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t log_fields[] = {
    OPT_STR("level", struct yaml_log, level),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t batch_fields[] = {
    OPT_STR("maxAmount", struct yaml_batch, max_amount),
    OPT_STR("window", struct yaml_batch, window),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t connect_fields[] = {
    OPT_STR("timeout", struct yaml_connect, timeout),
    CYAML_FIELD_END,
};
static const cyaml_schema_field_t root_fields[] = {
    OPT_STR("id", struct yaml_root, id),
    OPT_STR("mode", struct yaml_root, mode),
    OPT_STR("dataset", struct yaml_root, dataset),
    CYAML_FIELD_MAPPING("server", CYAML_FLAG_OPTIONAL, struct yaml_root, server, server_fields),
    CYAML_FIELD_MAPPING("loop", CYAML_FLAG_OPTIONAL, struct yaml_root, loop, loop_fields),
    CYAML_FIELD_MAPPING("log", CYAML_FLAG_OPTIONAL, struct yaml_root, log, log_fields),
    CYAML_FIELD_MAPPING("batch", CYAML_FLAG_OPTIONAL, struct yaml_root, batch, batch_fields),
    CYAML_FIELD_MAPPING("connect", CYAML_FLAG_OPTIONAL, struct yaml_root, connect, connect_fields),
    CYAML_FIELD_END,
};
static const cyaml_schema_value_t root_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct yaml_root, root_fields),
};

/* libcyaml reports what went wrong (the unexpected key, the path to a bad
 * value) through its log function: collect the messages for our error. */
static void cyaml_collect(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    struct buf *msgs = ctx;
    if (level < CYAML_LOG_ERROR) {
        return;
    }
    char line[256];
    int n = vsnprintf(line, sizeof(line), fmt, args);
    if (n < 0) {
        return;
    }
    /* Keep the substance: drop the "Load: " prefix, the "Backtrace:" header,
     * indentation and line ends. */
    const char *p = line;
    if (strncmp(p, "Load: ", 6) == 0) {
        p += 6;
    }
    while (*p == ' ') {
        p++;
    }
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ')) {
        len--;
    }
    if (len == 0 || (len == 10 && memcmp(p, "Backtrace:", 10) == 0) || msgs->len > 1024) {
        return;
    }
    if (msgs->len > 0) {
        buf_append(msgs, "; ", 2);
    }
    buf_append(msgs, p, len);
}

/* ---- Settings: one value per key, from the file or the environment ---------- */

enum setting_id {
    S_ID,
    S_MODE,
    S_DATASET,
    S_SERVER_ADDRESS,
    S_LOOP_AMOUNT,
    S_LOOP_PERIOD,
    S_LOG_LEVEL,
    S_BATCH_MAX,
    S_BATCH_WINDOW,
    S_CONNECT_TIMEOUT,
    S_COUNT,
};

static const struct {
    const char *key;
    const char *env;
    const char *fallback; /* NULL: no default */
} setting_defs[S_COUNT] = {
    [S_ID] = {"id", "CLI_ID", NULL},
    [S_MODE] = {"mode", "CLI_MODE", "bets"},
    [S_DATASET] = {"dataset", "CLI_DATASET", NULL},
    [S_SERVER_ADDRESS] = {"server.address", "CLI_SERVER_ADDRESS", "server:12345"},
    [S_LOOP_AMOUNT] = {"loop.amount", "CLI_LOOP_AMOUNT", "5"},
    [S_LOOP_PERIOD] = {"loop.period", "CLI_LOOP_PERIOD", "5s"},
    [S_LOG_LEVEL] = {"log.level", "CLI_LOG_LEVEL", "INFO"},
    [S_BATCH_MAX] = {"batch.maxAmount", "CLI_BATCH_MAXAMOUNT", NULL},
    [S_BATCH_WINDOW] = {"batch.window", "CLI_BATCH_WINDOW", NULL},
    [S_CONNECT_TIMEOUT] = {"connect.timeout", "CLI_CONNECT_TIMEOUT", "30s"},
};

struct setting {
    const char *value;  /* NULL when unset */
    const char *source; /* the file's path, an env name, or "default" */
};

/* Writes the message and evaluates to -1. A macro, not a variadic function:
 * clang-tidy 14's va_list checker misfires when it analyses several files. */
#define fail(err, errlen, ...) ((void)snprintf((err), (errlen), __VA_ARGS__), -1)

static int bad_value(const struct setting *set, enum setting_id id, const char *why, char *err,
                     size_t errlen)
{
    return fail(err, errlen, "%s: %s (value '%s' from %s)", setting_defs[id].key, why,
                set[id].value, set[id].source);
}

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return str_to_i64(str_make(s, strlen(s)), min, max, out);
}

/* "host:port", "[v6]:port". */
static int parse_address(struct client_config *cfg, const struct setting *set, char *err,
                         size_t errlen)
{
    const char *addr = set[S_SERVER_ADDRESS].value;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0') {
        return bad_value(set, S_SERVER_ADDRESS, "expected host:port", err, errlen);
    }
    int64_t port;
    if (!parse_int(colon + 1, 1, 65535, &port)) {
        return bad_value(set, S_SERVER_ADDRESS, "the port must be a number from 1 to 65535", err,
                         errlen);
    }
    const char *host = addr;
    size_t host_len = (size_t)(colon - addr);
    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']') {
            return bad_value(set, S_SERVER_ADDRESS, "expected [ipv6]:port", err, errlen);
        }
        host++;
        host_len -= 2;
    }
    cfg->server_address = xstrdup(addr);
    cfg->server_host = xmalloc(host_len + 1);
    memcpy(cfg->server_host, host, host_len);
    cfg->server_host[host_len] = '\0';
    cfg->server_port = xstrdup(colon + 1);
    return 0;
}

static int validate(struct client_config *cfg, const struct setting *set, char *err, size_t errlen)
{
    int64_t v;
    if (set[S_ID].value == NULL) {
        return fail(err, errlen, "id: missing; set id in the config file or CLI_ID");
    }
    if (!parse_int(set[S_ID].value, 1, INT32_MAX, &v)) {
        return bad_value(set, S_ID, "must be an integer from 1 to 2147483647", err, errlen);
    }
    cfg->id = (int32_t)v;

    if (strcasecmp(set[S_MODE].value, "bets") == 0) {
        cfg->mode = MODE_BETS;
    } else if (strcasecmp(set[S_MODE].value, "echo") == 0) {
        cfg->mode = MODE_ECHO;
    } else {
        return bad_value(set, S_MODE, "must be bets or echo", err, errlen);
    }

    if (!parse_int(set[S_LOOP_AMOUNT].value, 0, INT32_MAX, &cfg->loop_amount)) {
        return bad_value(set, S_LOOP_AMOUNT, "must be an integer from 0 to 2147483647", err,
                         errlen);
    }
    if (!duration_parse(set[S_LOOP_PERIOD].value, &cfg->loop_period_ns)) {
        return bad_value(set, S_LOOP_PERIOD, "not a duration such as 5s, 100ms or 1m30s", err,
                         errlen);
    }
    if (cfg->loop_period_ns < 0) {
        return bad_value(set, S_LOOP_PERIOD, "must not be negative", err, errlen);
    }
    if (!duration_parse(set[S_CONNECT_TIMEOUT].value, &cfg->connect_timeout_ns)) {
        return bad_value(set, S_CONNECT_TIMEOUT, "not a duration such as 30s, 500ms or 1m", err,
                         errlen);
    }
    if (cfg->connect_timeout_ns < 0) {
        return bad_value(set, S_CONNECT_TIMEOUT, "must not be negative", err, errlen);
    }

    if (!log_level_parse(set[S_LOG_LEVEL].value, &cfg->log_level)) {
        return bad_value(set, S_LOG_LEVEL, "must be DEBUG, INFO, WARNING or ERROR", err, errlen);
    }

    cfg->batch_max_amount = CONFIG_DEFAULT_BATCH_MAX;
    if (set[S_BATCH_MAX].value != NULL) {
        if (!parse_int(set[S_BATCH_MAX].value, 1, INT32_MAX, &v)) {
            return bad_value(set, S_BATCH_MAX, "must be an integer from 1 to 2147483647", err,
                             errlen);
        }
        cfg->batch_max_amount = (uint32_t)v;
    }
    cfg->batch_window = CONFIG_DEFAULT_BATCH_WINDOW;
    if (set[S_BATCH_WINDOW].value != NULL) {
        if (!parse_int(set[S_BATCH_WINDOW].value, 1, CONFIG_MAX_BATCH_WINDOW, &v)) {
            return bad_value(set, S_BATCH_WINDOW, "must be an integer from 1 to 4096", err, errlen);
        }
        cfg->batch_window = (uint32_t)v;
    }

    if (set[S_DATASET].value != NULL && set[S_DATASET].value[0] == '\0') {
        return bad_value(set, S_DATASET, "must not be empty", err, errlen);
    }
    if (parse_address(cfg, set, err, errlen) != 0) {
        return -1;
    }
    cfg->log_level_name = xstrdup(set[S_LOG_LEVEL].value);
    if (set[S_DATASET].value != NULL) {
        cfg->dataset = xstrdup(set[S_DATASET].value);
        cfg->dataset_explicit = true;
    } else {
        char path[64];
        (void)snprintf(path, sizeof(path), "datasets/agency-%" PRId32 ".csv", cfg->id);
        cfg->dataset = xstrdup(path);
    }
    return 0;
}

/* Loads the file into *root (left NULL for an absent default file or an empty
 * document). */
static int load_yaml(const char *path, bool explicit_path, const cyaml_config_t *cc,
                     struct yaml_root **root, struct buf *msgs, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT && !explicit_path) {
            return 0;
        }
        return fail(err, errlen, "config file %s: %s", path, strerror(errno));
    }
    (void)fclose(f); /* opened read-only to tell a missing file apart */
    cyaml_err_t rc = cyaml_load_file(path, cc, &root_schema, (cyaml_data_t **)root, NULL);
    if (rc != CYAML_OK) {
        buf_append_byte(msgs, '\0');
        return fail(err, errlen, "config file %s: %s: %s", path, cyaml_strerror(rc),
                    (const char *)msgs->data);
    }
    return 0;
}

int config_load(struct client_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    bool explicit_path = path != NULL;
    if (path == NULL) {
        path = CONFIG_DEFAULT_PATH;
    }

    struct buf msgs = BUF_INIT;
    cyaml_config_t cc = {
        .log_fn = cyaml_collect,
        .log_ctx = &msgs,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_DEFAULT, /* unknown keys are errors */
    };
    struct yaml_root *root = NULL;
    int rc = load_yaml(path, explicit_path, &cc, &root, &msgs, err, errlen);
    buf_free(&msgs);
    if (rc != 0) {
        return -1;
    }

    struct setting set[S_COUNT];
    for (int i = 0; i < S_COUNT; i++) {
        set[i].value = setting_defs[i].fallback;
        set[i].source = "default";
    }
    if (root != NULL) {
        const char *from_file[S_COUNT] = {
            [S_ID] = root->id,
            [S_MODE] = root->mode,
            [S_DATASET] = root->dataset,
            [S_SERVER_ADDRESS] = root->server.address,
            [S_LOOP_AMOUNT] = root->loop.amount,
            [S_LOOP_PERIOD] = root->loop.period,
            [S_LOG_LEVEL] = root->log.level,
            [S_BATCH_MAX] = root->batch.max_amount,
            [S_BATCH_WINDOW] = root->batch.window,
            [S_CONNECT_TIMEOUT] = root->connect.timeout,
        };
        for (int i = 0; i < S_COUNT; i++) {
            if (from_file[i] != NULL) {
                set[i].value = from_file[i];
                set[i].source = path;
            }
        }
    }
    for (int i = 0; i < S_COUNT; i++) {
        const char *env = getenv(setting_defs[i].env);
        if (env != NULL && env[0] != '\0') {
            set[i].value = env;
            set[i].source = setting_defs[i].env;
        }
    }

    rc = validate(cfg, set, err, errlen);
    if (root != NULL) {
        cyaml_free(&cc, &root_schema, root, 0);
    }
    if (rc != 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct client_config *cfg)
{
    free(cfg->server_address);
    free(cfg->server_host);
    free(cfg->server_port);
    free(cfg->log_level_name);
    free(cfg->dataset);
    memset(cfg, 0, sizeof(*cfg));
}
