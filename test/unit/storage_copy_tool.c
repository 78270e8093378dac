/*
 * Test helper for csv_python_check.py: reads bet rows (CSV, 6 fields) from
 * stdin with the core CSV reader and stores them with the core storage into
 * the file named by argv[1]. Exit 0, or 1 with the reason on stderr.
 */
#include <stdio.h>

#include "tp0/csv.h"
#include "tp0/storage.h"

static int store(void *ctx, const struct bet *bet)
{
    storage_append(ctx, bet, 1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT.csv < input.csv\n", argv[0]);
        return 1;
    }
    struct storage s;
    size_t dropped;
    char err[512];
    if (storage_open(&s, argv[1], &dropped, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int fd = 0;
    struct csv_reader reader;
    csv_reader_init(&reader, csv_read_fd, &fd, CSV_DEFAULT_BUFSIZE);
    int rc = load_bets_from(&reader, "stdin", store, &s, err, sizeof(err));
    csv_reader_free(&reader);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        storage_close(&s, err, sizeof(err));
        return 1;
    }
    if (storage_close(&s, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    return 0;
}
