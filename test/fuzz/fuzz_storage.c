/*
 * Fuzz target: the storage file reader (load_bets) over arbitrary file bytes.
 *
 * Input: byte 0 picks the reader's buffer size, byte 1 after how many bets the
 * visitor asks to stop (0 = never), byte 2 the error buffer size; the rest is
 * the file. The visitor touches every field of every bet. Each bet it sees is
 * written back as storage_append formats it, and that text must load back to
 * the same bets: the writer and the reader agree on the file format.
 */
#include <string.h>

#include "fuzz.h"
#include "tp0/csv.h"
#include "tp0/storage.h"

#define STOP_VALUE 7

struct visit {
    size_t seen;
    size_t stop_after;
    size_t errlen;
    struct buf canon;       /* the bets seen, serialised */
    struct storage rewrite; /* only its staging buffer is used: no file */
};

static int visit_cb(void *ctx, const struct bet *bet)
{
    struct visit *v = ctx;
    fuzz_touch(bet->first_name);
    fuzz_touch(bet->last_name);
    fuzz_touch(bet->document);
    fuzz_touch(bet->birthdate);
    fuzz_validate_bet(bet, v->errlen);
    fuzz_bet_canon(&v->canon, bet);
    storage_append(&v->rewrite, bet, 1);
    v->seen++;
    return v->stop_after != 0 && v->seen == v->stop_after ? STOP_VALUE : 0;
}

static void visit_init(struct visit *v, size_t stop_after, size_t errlen)
{
    memset(v, 0, sizeof *v);
    v->stop_after = stop_after;
    v->errlen = errlen;
    buf_init(&v->canon);
    v->rewrite.fd = -1;
    buf_init(&v->rewrite.staged);
}

static void visit_free(struct visit *v)
{
    buf_free(&v->canon);
    buf_free(&v->rewrite.staged);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    size_t bufsize = data[0] < 0x80 ? (size_t)data[0] + 1 : 4096;
    size_t stop_after = data[1] % 8;
    size_t errlen = fuzz_errlen(data[2]);
    struct csv_mem mem = {(const char *)data + 3, size - 3, 0};

    struct csv_reader r;
    csv_reader_init(&r, csv_read_mem, &mem, bufsize);
    struct visit v;
    visit_init(&v, stop_after, errlen);
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = load_bets_from(&r, "fuzz.csv", visit_cb, &v, err, errlen);
    csv_reader_free(&r);
    fuzz_check_err(err, errlen, rc == -1);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == STOP_VALUE);
    FUZZ_CHECK((rc == STOP_VALUE) == (stop_after != 0 && v.seen == stop_after));

    /* What was seen, written back and loaded again, is the same bets. */
    const struct buf *text = &v.rewrite.staged;
    struct csv_mem mem2 = {(const char *)text->data, text->len, 0};
    csv_reader_init(&r, csv_read_mem, &mem2, text->len + 64);
    struct visit again;
    visit_init(&again, 0, errlen);
    rc = load_bets_from(&r, "rewritten.csv", visit_cb, &again, err, sizeof err);
    csv_reader_free(&r);
    if (rc != 0) {
        fprintf(stderr, "rewritten file rejected: %s\n", err);
    }
    FUZZ_CHECK(rc == 0 && again.seen == v.seen);
    FUZZ_CHECK(again.canon.len == v.canon.len &&
               (v.canon.len == 0 || memcmp(again.canon.data, v.canon.data, v.canon.len) == 0));
    visit_free(&again);
    visit_free(&v);
    return 0;
}
