/*
 * Durable bet storage: the C counterpart of the course's store_bets, load_bets
 * and has_won. An append-only CSV file of rows
 *   agency,first_name,last_name,document,birthdate,number
 * written with the shared CSV writer (Python csv dialect, QUOTE_MINIMAL, \r\n).
 *
 * Appends are staged in memory and reach the disk in one write() followed by one
 * fdatasync() in storage_commit(), so a caller can group every batch that
 * arrived in one event-loop iteration behind a single sync.
 */
#ifndef TP0_STORAGE_H
#define TP0_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tp0/bet.h"
#include "tp0/buf.h"

struct storage {
    int fd;
    char *path;
    struct buf staged; /* formatted rows not yet written */
    off_t size;        /* bytes on disk after the last commit */
};

/*
 * Opens (creating if needed, with its directory synced) the file for
 * appending. A torn trailing row, left by a crash in the middle of a write, is
 * everything after the last line end ('\n', which ends "\r\n" and "\n" rows
 * alike); it is cut off and *dropped_bytes says how much (0 when the file was
 * clean).
 * Returns 0, or -1 with a reason in err.
 */
int storage_open(struct storage *s, const char *path, size_t *dropped_bytes, char *err,
                 size_t errlen);
/* Formats the bets as rows into the staging buffer; no I/O. */
void storage_append(struct storage *s, const struct bet *bets, size_t count);
/* Writes everything staged (one write, retried on short writes) and fdatasync()s.
 * Returns 0, or -1 with a reason; on failure the staged rows are kept. */
int storage_commit(struct storage *s, char *err, size_t errlen);
static inline bool storage_has_staged(const struct storage *s)
{
    return s->staged.len > 0;
}
/* Commits anything staged, then closes. Returns 0, or -1 with a reason. */
int storage_close(struct storage *s, char *err, size_t errlen);

/*
 * Streams every stored bet through fn with a fixed buffer: the file is never
 * held in memory. The bet's strings are valid only during the call. fn returns
 * 0 to go on, non-zero to stop (that value is returned). A malformed row makes
 * load_bets return -1 with file, line and reason in err.
 */
typedef int (*bet_visit_fn)(void *ctx, const struct bet *bet);
int load_bets(const char *path, bet_visit_fn fn, void *ctx, char *err, size_t errlen);
/* Same, over an already-open reader's source (used by tests and the fuzzer). */
struct csv_reader;
int load_bets_from(struct csv_reader *reader, const char *name, bet_visit_fn fn, void *ctx,
                   char *err, size_t errlen);

static inline bool has_won(const struct bet *bet)
{
    return bet_has_won(bet);
}

#endif
