/* Dataset rows -> bets, through the core CSV reader and bet validation. */
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp0/util.h"

void dataset_init(struct dataset *d)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
}

/* Counts the rows, good and bad, then rewinds: one streamed pass with the same
 * reader, so `total` agrees with what dataset_next will return. */
static int count_rows(struct dataset *d, char *err, size_t errlen)
{
    struct csv_record rec;
    char why[256];
    for (;;) {
        enum csv_status st = csv_next(&d->reader, &rec, why, sizeof(why));
        if (st == CSV_EOF) {
            break;
        }
        if (st == CSV_IO_ERROR) {
            (void)snprintf(err, errlen, "cannot read %s: %s", d->path, why);
            return -1;
        }
        d->total++;
    }
    if (lseek(d->fd, d->data_start, SEEK_SET) != d->data_start) {
        (void)snprintf(err, errlen, "cannot rewind %s: %s", d->path, strerror(errno));
        return -1;
    }
    csv_reader_free(&d->reader);
    csv_reader_init(&d->reader, csv_read_fd, &d->fd, (size_t)CSV_DEFAULT_BUFSIZE);
    return 0;
}

int dataset_open(struct dataset *d, const char *path, char *err, size_t errlen)
{
    dataset_init(d);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        (void)snprintf(err, errlen, "cannot open dataset %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        /* A regular file is needed: the row count takes a first pass. */
        (void)snprintf(err, errlen, "dataset %s is not a regular file", path);
        (void)close(fd); /* read-only or never used: nothing to lose */
        return -1;
    }
    d->fd = fd;
    d->path = xstrdup(path);
    /* Spreadsheets often save "UTF-8 with BOM": the mark is not part of the first name. */
    static const char bom[3] = {'\xef', '\xbb', '\xbf'};
    char head[3];
    if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
        memcmp(head, bom, sizeof(bom)) == 0) {
        d->data_start = (off_t)sizeof(bom);
        if (lseek(fd, d->data_start, SEEK_SET) != d->data_start) {
            (void)snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            dataset_close(d);
            return -1;
        }
    }
    csv_reader_init(&d->reader, csv_read_fd, &d->fd, (size_t)CSV_DEFAULT_BUFSIZE);
    if (count_rows(d, err, errlen) != 0) {
        dataset_close(d);
        return -1;
    }
    return 0;
}

enum dataset_status dataset_next(struct dataset *d, int32_t agency, struct bet *bet,
                                 unsigned long *line, char *err, size_t errlen)
{
    struct csv_record rec;
    enum csv_status st = csv_next(&d->reader, &rec, err, errlen);
    switch (st) {
    case CSV_EOF:
        return DATASET_EOF;
    case CSV_IO_ERROR:
        return DATASET_ERROR;
    case CSV_BAD_ROW:
        *line = rec.line;
        return DATASET_REJECTED;
    case CSV_RECORD:
        break;
    }
    *line = rec.line;
    if (rec.nfields != DATASET_FIELDS) {
        (void)snprintf(
            err, errlen,
            "expected %d fields (first_name,last_name,document,birthdate,number), got %zu",
            DATASET_FIELDS, rec.nfields);
        return DATASET_REJECTED;
    }
    int64_t number;
    if (!str_to_i64(rec.fields[4], 0, INT32_MAX, &number)) {
        (void)snprintf(err, errlen, "number '%.*s' is not an integer from 0 to 2147483647",
                       (int)(rec.fields[4].len > 32 ? 32 : rec.fields[4].len), rec.fields[4].ptr);
        return DATASET_REJECTED;
    }
    bet->agency = agency;
    bet->first_name = rec.fields[0];
    bet->last_name = rec.fields[1];
    bet->document = rec.fields[2];
    bet->birthdate = rec.fields[3];
    bet->number = (int32_t)number;
    if (!bet_validate(bet, err, errlen)) {
        return DATASET_REJECTED;
    }
    return DATASET_BET;
}

void dataset_close(struct dataset *d)
{
    if (d->fd < 0) {
        return;
    }
    csv_reader_free(&d->reader);
    (void)close(d->fd); /* read-only or never used: nothing to lose */
    d->fd = -1;
    free(d->path);
    d->path = NULL;
}
