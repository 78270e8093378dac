/*
 * The one logger of both programs. Lines look like Python's logging format
 *   YYYY-MM-DD HH:MM:SS LEVEL    message
 * (level padded to 8). Structured lines read
 *   action: <name> | result: <success|fail|in_progress> | key: value ...
 * and the course's black-box tests split them on '|', so every value passes
 * through a sanitiser that replaces '|' (and control characters) with '?'.
 *
 * Lines are appended to an in-memory buffer and written to stdout by
 * log_flush() in one write; programs flush once per event-loop iteration (see
 * log_set_pending_hook) and at exit. The logger is single-threaded by design.
 */
#ifndef TP0_LOG_H
#define TP0_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/buf.h"
#include "tp0/util.h"

enum log_level {
    LOG_DEBUG = 10,
    LOG_INFO = 20,
    LOG_WARNING = 30,
    LOG_ERROR = 40,
};

/* Accepts DEBUG, INFO, WARNING, ERROR in any case (also WARN, CRITICAL->ERROR). */
bool log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/* out_fd is where log_flush writes (1 = stdout). */
void log_init(enum log_level level, int out_fd);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
/* Called when the buffer goes from empty to non-empty, so an event loop can
 * schedule a flush for the end of the current iteration. */
void log_set_pending_hook(void (*hook)(void *ctx), void *ctx);
/* Writes the buffer out (one write, retried on short writes). */
void log_flush(void);
/* Frees the buffer after a final flush. */
void log_shutdown(void);

/* A plain line: log_msg(LOG_ERROR, "cannot open %s", path). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A structured line, built piece by piece into `out` (the logger's buffer with
 * log_line_begin, or a caller's staging buffer with log_line_begin_into, for
 * lines that must wait, e.g. until a batch is durable). When the level is
 * disabled, every call is a no-op. Usage:
 *   struct log_line l;
 *   log_line_begin(&l, LOG_INFO, "apuesta_almacenada", "success");
 *   log_line_str(&l, "dni", bet->document);
 *   log_line_int(&l, "numero", bet->number);
 *   log_line_end(&l);
 */
struct log_line {
    struct buf *out;
    bool enabled;
};
void log_line_begin(struct log_line *l, enum log_level level, const char *action,
                    const char *result);
void log_line_begin_into(struct log_line *l, struct buf *out, enum log_level level,
                         const char *action, const char *result);
void log_line_str(struct log_line *l, const char *key, struct str value);
void log_line_cstr(struct log_line *l, const char *key, const char *value);
void log_line_int(struct log_line *l, const char *key, int64_t value);
void log_line_fmt(struct log_line *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_line_end(struct log_line *l);

/* Moves lines staged with log_line_begin_into into the logger's buffer. */
void log_append_staged(struct buf *staged);

/* Shorthand for a line with no key/value pairs. */
void log_action(enum log_level level, const char *action, const char *result);

#endif
