/*
 * An agency's dataset file: rows first_name,last_name,document,birthdate,number
 * read one at a time through the core CSV reader (never the whole file in
 * memory) and turned into validated bets.
 */
#ifndef TP0_CLIENT_DATASET_H
#define TP0_CLIENT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp0/bet.h"
#include "tp0/csv.h"

#define DATASET_FIELDS 5

struct dataset {
    char *path;
    int fd; /* -1 when closed */
    struct csv_reader reader;
    unsigned long total; /* rows in the file (good and bad), from a first pass */
    off_t data_start;    /* 3 when the file starts with a UTF-8 byte order mark, else 0 */
};

enum dataset_status {
    DATASET_BET,      /* *bet holds a valid bet; its strings live until the next call */
    DATASET_REJECTED, /* a row that cannot be a bet: *line and err say where and why */
    DATASET_EOF,
    DATASET_ERROR, /* reading failed: err says why */
};

/* A closed dataset (dataset_close is then a no-op). */
void dataset_init(struct dataset *d);
/* Opens the file and counts its rows in a streamed first pass (that count is
 * the `total` of the progress lines). Returns 0, or -1 with a reason. */
int dataset_open(struct dataset *d, const char *path, char *err, size_t errlen);
/* The next row as a bet of `agency`. */
enum dataset_status dataset_next(struct dataset *d, int32_t agency, struct bet *bet,
                                 unsigned long *line, char *err, size_t errlen);
static inline bool dataset_is_open(const struct dataset *d)
{
    return d->fd >= 0;
}
/* Closes the file and frees the reader; safe to call twice. */
void dataset_close(struct dataset *d);

#endif
