/* The logger: Python-logging-shaped lines, sanitised values, one buffered write. */
#include "tp0/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Above this many buffered bytes a line is written out at once, bounding memory. */
#define LOG_FLUSH_THRESHOLD (1u << 20)
/* "YYYY-MM-DD HH:MM:SS " */
#define TS_LEN 20

static struct {
    enum log_level level;
    int out_fd;
    struct buf buf;
    void (*hook)(void *ctx);
    void *hook_ctx;
    bool hook_armed; /* the buffer is empty: the next line fires the hook */
    time_t ts_second;
    bool ts_valid;
    char ts[TS_LEN + 1];
} g = {
    .level = LOG_INFO,
    .out_fd = 1,
    .buf = BUF_INIT,
    .hook_armed = true,
};

bool log_level_parse(const char *name, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"DEBUG", LOG_DEBUG},  {"INFO", LOG_INFO},   {"WARNING", LOG_WARNING},
        {"WARN", LOG_WARNING}, {"ERROR", LOG_ERROR}, {"CRITICAL", LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    }
    return false;
}

const char *log_level_name(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG:
        return "DEBUG";
    case LOG_INFO:
        return "INFO";
    case LOG_WARNING:
        return "WARNING";
    case LOG_ERROR:
        return "ERROR";
    }
    return "UNKNOWN";
}

/* The level column, padded to 8 like Python's %(levelname)-8s, plus the separator. */
static struct str level_column(enum log_level level)
{
    switch (level) {
    case LOG_DEBUG:
        return STR_LIT("DEBUG    ");
    case LOG_INFO:
        return STR_LIT("INFO     ");
    case LOG_WARNING:
        return STR_LIT("WARNING  ");
    case LOG_ERROR:
        return STR_LIT("ERROR    ");
    }
    return STR_LIT("UNKNOWN  ");
}

void log_init(enum log_level level, int out_fd)
{
    g.level = level;
    g.out_fd = out_fd;
    g.hook_armed = g.buf.len == 0;
}

void log_set_level(enum log_level level)
{
    g.level = level;
}

bool log_enabled(enum log_level level)
{
    return level >= g.level;
}

void log_set_pending_hook(void (*hook)(void *ctx), void *ctx)
{
    g.hook = hook;
    g.hook_ctx = ctx;
}

void log_flush(void)
{
    size_t done = 0;
    while (done < g.buf.len) {
        ssize_t n = write(g.out_fd, g.buf.data + done, g.buf.len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* Nowhere left to report to: drop the lines rather than grow forever. */
            break;
        }
        done += (size_t)n;
    }
    buf_reset(&g.buf);
    g.hook_armed = true;
}

void log_shutdown(void)
{
    log_flush();
    buf_free(&g.buf);
    g.hook = NULL;
    g.hook_ctx = NULL;
}

/* Called after whole lines were added to the logger's own buffer. */
static void lines_added(void)
{
    if (g.buf.len == 0) {
        return;
    }
    if (g.buf.len > LOG_FLUSH_THRESHOLD) {
        log_flush();
        return;
    }
    if (g.hook_armed) {
        g.hook_armed = false;
        if (g.hook != NULL) {
            g.hook(g.hook_ctx);
        }
    }
}

/* Local time, reformatted only when the second changes. */
static const char *timestamp(void)
{
    time_t now = time(NULL);
    if (!g.ts_valid || now != g.ts_second) {
        struct tm tm;
        if (localtime_r(&now, &tm) == NULL ||
            strftime(g.ts, sizeof(g.ts), "%Y-%m-%d %H:%M:%S ", &tm) != TS_LEN) {
            memcpy(g.ts, "0000-00-00 00:00:00 ", TS_LEN + 1);
        }
        g.ts_second = now;
        g.ts_valid = true;
    }
    return g.ts;
}

static void append_prefix(struct buf *out, enum log_level level)
{
    struct str col = level_column(level);
    uint8_t *p = buf_reserve(out, TS_LEN + col.len);
    memcpy(p, timestamp(), TS_LEN);
    memcpy(p + TS_LEN, col.ptr, col.len);
    out->len += TS_LEN + col.len;
}

/* '|' would split a structured line, control bytes would break it, and bytes
 * that are not UTF-8 would trip a reader that decodes the log: each such byte
 * becomes '?', so the length never changes. */
static void sanitize_in_place(uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f || c == '|') {
                p[i] = '?';
            }
            i++;
            continue;
        }
        size_t n = utf8_sequence_len(p + i, len - i);
        if (n == 0) {
            p[i++] = '?';
        } else {
            i += n;
        }
    }
}

static void append_sanitized(struct buf *out, const char *s, size_t len)
{
    uint8_t *p = buf_reserve(out, len);
    memcpy(p, s, len);
    sanitize_in_place(p, len);
    out->len += len;
}

static void append_cstr_sanitized(struct buf *out, const char *s)
{
    append_sanitized(out, s, strlen(s));
}

/* vsnprintf straight into the buffer, then sanitises what it wrote. */
__attribute__((format(printf, 2, 0))) static void append_vfmt_sanitized(struct buf *out,
                                                                        const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n =
        vsnprintf(NULL, 0, fmt, ap2); // NOLINT(clang-analyzer-valist.Uninitialized): see protocol.c
    va_end(ap2);
    if (n <= 0) {
        return;
    }
    uint8_t *p = buf_reserve(out, (size_t)n + 1);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    sanitize_in_place(p, (size_t)n);
    out->len += (size_t)n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    append_prefix(&g.buf, level);
    va_list ap;
    va_start(ap, fmt);
    append_vfmt_sanitized(&g.buf, fmt, ap);
    va_end(ap);
    buf_append_byte(&g.buf, '\n');
    lines_added();
}

void log_line_begin_into(struct log_line *l, struct buf *out, enum log_level level,
                         const char *action, const char *result)
{
    l->out = out;
    l->enabled = log_enabled(level);
    if (!l->enabled) {
        return;
    }
    append_prefix(out, level);
    buf_append(out, "action: ", 8);
    append_cstr_sanitized(out, action);
    buf_append(out, " | result: ", 11);
    append_cstr_sanitized(out, result);
}

void log_line_begin(struct log_line *l, enum log_level level, const char *action,
                    const char *result)
{
    log_line_begin_into(l, &g.buf, level, action, result);
}

static void append_key(struct buf *out, const char *key)
{
    buf_append(out, " | ", 3);
    append_cstr_sanitized(out, key);
    buf_append(out, ": ", 2);
}

void log_line_str(struct log_line *l, const char *key, struct str value)
{
    if (!l->enabled) {
        return;
    }
    append_key(l->out, key);
    append_sanitized(l->out, value.ptr, value.len);
}

void log_line_cstr(struct log_line *l, const char *key, const char *value)
{
    if (!l->enabled) {
        return;
    }
    append_key(l->out, key);
    append_cstr_sanitized(l->out, value);
}

void log_line_int(struct log_line *l, const char *key, int64_t value)
{
    if (!l->enabled) {
        return;
    }
    append_key(l->out, key);
    uint8_t *p = buf_reserve(l->out, I64_DEC_MAX);
    l->out->len += fmt_i64((char *)p, value);
}

void log_line_fmt(struct log_line *l, const char *key, const char *fmt, ...)
{
    if (!l->enabled) {
        return;
    }
    append_key(l->out, key);
    va_list ap;
    va_start(ap, fmt);
    append_vfmt_sanitized(l->out, fmt, ap);
    va_end(ap);
}

void log_line_end(struct log_line *l)
{
    if (!l->enabled) {
        return;
    }
    buf_append_byte(l->out, '\n');
    if (l->out == &g.buf) {
        lines_added();
    }
}

void log_append_staged(struct buf *staged)
{
    if (staged->len == 0) {
        return;
    }
    buf_append(&g.buf, staged->data, staged->len);
    buf_reset(staged);
    lines_added();
}

void log_action(enum log_level level, const char *action, const char *result)
{
    struct log_line l;
    log_line_begin(&l, level, action, result);
    log_line_end(&l);
}
