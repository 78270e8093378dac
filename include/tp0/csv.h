/*
 * RFC 4180 CSV, in the dialect of Python's csv module (QUOTE_MINIMAL, rows end
 * in \r\n). One reader and one writer shared by the storage file and the
 * client's dataset files. The reader streams: it returns one record at a time
 * from a fixed buffer and never holds a whole file.
 */
#ifndef TP0_CSV_H
#define TP0_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tp0/buf.h"
#include "tp0/util.h"

#define CSV_MAX_FIELDS      16
#define CSV_DEFAULT_BUFSIZE ((size_t)256 * 1024)

/* Where the reader's bytes come from: returns bytes read, 0 at end, -1 on error
 * (errno set). A file descriptor and a memory range are provided below. */
typedef ssize_t (*csv_read_fn)(void *ctx, void *dst, size_t len);

struct csv_record {
    size_t nfields;
    struct str fields[CSV_MAX_FIELDS]; /* views valid until the next csv_next() */
    unsigned long line;                /* 1-based line where the record starts */
    off_t end_offset;                  /* byte offset just past the record */
};

enum csv_status {
    CSV_RECORD,   /* *rec filled */
    CSV_BAD_ROW,  /* a malformed record was skipped; rec->line and err say where and why */
    CSV_EOF,      /* no more records */
    CSV_IO_ERROR, /* the read function failed; err says why */
};

struct csv_reader {
    csv_read_fn read;
    void *ctx;
    char *buf;
    size_t cap;
    size_t start; /* first unconsumed byte */
    size_t end;   /* one past the last byte read */
    bool eof;
    unsigned long line;
    off_t offset; /* stream offset of buf[start] */
};

/* bufsize (0: CSV_DEFAULT_BUFSIZE) bounds the longest record, line end included;
 * a longer one is reported as CSV_BAD_ROW and skipped up to the next '\n'. */
void csv_reader_init(struct csv_reader *r, csv_read_fn read, void *ctx, size_t bufsize);
void csv_reader_free(struct csv_reader *r);
/* Reads the next record. Accepts \r\n and \n line ends; an empty line is skipped;
 * a final record without a line end is still a record. */
enum csv_status csv_next(struct csv_reader *r, struct csv_record *rec, char *err, size_t errlen);

/* Read functions: ctx is a pointer to an int fd / to a struct csv_mem. */
ssize_t csv_read_fd(void *ctx, void *dst, size_t len);
struct csv_mem {
    const char *data;
    size_t len;
    size_t pos;
};
ssize_t csv_read_mem(void *ctx, void *dst, size_t len);

/* Writer: appends one field (quoted only when it holds , " \r or \n, with quotes
 * doubled) / one whole row terminated by \r\n. */
void csv_write_field(struct buf *out, struct str field);
void csv_write_row(struct buf *out, const struct str *fields, size_t nfields);
/* The same field encoding for hot loops that reserve a whole row at once: writes
 * the field at dst, which has room for CSV_FIELD_MAX(field.len) bytes, and
 * returns the end of what it wrote. */
#define CSV_FIELD_MAX(len) ((size_t)2 * (len) + 2)
uint8_t *csv_put_field(uint8_t *dst, struct str field);

#endif
