/* Bets mode: pipelined NEW_BETS batches, FINISHED, WINNERS. */
#include "agency.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "tp0/buf.h"
#include "tp0/evframe.h"
#include "tp0/log.h"
#include "tp0/protocol.h"
#include "tp0/util.h"

/* A frame that reached the server and awaits its answer. Answers come in order
 * (one connection), so a ring of these matches them. */
struct inflight {
    uint32_t count;
    unsigned long first_line; /* dataset lines, for error messages */
    unsigned long last_line;
};

enum agency_state {
    AGENCY_IDLE,         /* not connected yet */
    AGENCY_SENDING,      /* batches going out */
    AGENCY_WAIT_WINNERS, /* FINISHED sent */
    AGENCY_DONE,         /* over: finished, failed or stopped */
};

struct agency {
    struct event_base *base;
    const struct client_config *cfg;
    session_done_fn done;
    void *done_ctx;
    enum agency_state state;
    struct bufferevent *bev;

    /* The source: a dataset, or the one bet of the environment. */
    bool from_env;
    struct bet env_bet; /* strings point into the environment */
    struct dataset ds;
    bool eof; /* every row has been read (or the env bet encoded) */

    /* The batch being filled, encoded as it grows. */
    struct buf out;
    size_t frame_off;
    uint32_t batch_count;
    unsigned long batch_first_line;
    unsigned long batch_last_line;

    struct inflight *ring; /* batch.window entries */
    uint32_t ring_head;
    uint32_t ring_len;

    uint64_t bets_sent;
    uint64_t bets_confirmed;
    uint64_t batches_sent;
    uint64_t batches_confirmed;
    uint64_t rejected;

    struct event *progress_timer; /* one `progreso` line a second at most */
    uint64_t progress_logged;     /* bets_confirmed at the last progress line */
};

/* ---- closing and ending ------------------------------------------------------ */

static void close_dataset(struct agency *a)
{
    if (dataset_is_open(&a->ds)) {
        dataset_close(&a->ds);
        log_action(LOG_INFO, "close_dataset", "success");
    }
}

static void agency_close(struct agency *a)
{
    a->state = AGENCY_DONE;
    if (a->progress_timer != NULL) {
        (void)evtimer_del(a->progress_timer); /* only a broken event base fails here */
    }
    if (a->bev != NULL) {
        /* Drops whatever is still queued: a frame cut short never counts on the
         * server, which only acts on whole frames. */
        bufferevent_free(a->bev);
        a->bev = NULL;
        log_action(LOG_INFO, "close_connection", "success");
    }
    close_dataset(a);
}

/* The action a failure is reported under depends on what we were doing. */
static void agency_fail(struct agency *a, const char *reason)
{
    struct log_line l;
    if (a->state == AGENCY_WAIT_WINNERS) {
        log_line_begin(&l, LOG_ERROR, "consulta_ganadores", "fail");
    } else if (a->from_env) {
        log_line_begin(&l, LOG_ERROR, "apuesta_enviada", "fail");
        log_line_str(&l, "dni", a->env_bet.document);
        log_line_int(&l, "numero", a->env_bet.number);
    } else {
        log_line_begin(&l, LOG_ERROR, "apuestas_enviadas", "fail");
        log_line_int(&l, "cantidad", (int64_t)a->bets_confirmed);
        log_line_int(&l, "batches", (int64_t)a->batches_confirmed);
    }
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
    agency_close(a);
    a->done(a->done_ctx, 1);
}

static void log_progress(struct agency *a)
{
    struct log_line l;
    log_line_begin(&l, LOG_INFO, "progreso", "in_progress");
    log_line_int(&l, "enviadas", (int64_t)a->bets_confirmed);
    log_line_int(&l, "total", (int64_t)a->ds.total);
    log_line_end(&l);
    a->progress_logged = a->bets_confirmed;
}

static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agency *a = arg;
    if (a->state == AGENCY_SENDING && a->bets_confirmed != a->progress_logged) {
        log_progress(a);
    }
}

/* ---- building and sending batches ------------------------------------------- */

/* Sends the batch being filled; false (after agency_fail) if it cannot. */
static bool seal_batch(struct agency *a)
{
    proto_new_bets_end(&a->out, a->frame_off, a->batch_count);
    if (bufferevent_write(a->bev, a->out.data, a->out.len) != 0) {
        agency_fail(a, "cannot queue a batch for sending");
        return false;
    }
    uint32_t slot = (a->ring_head + a->ring_len) % a->cfg->batch_window;
    a->ring[slot] = (struct inflight){a->batch_count, a->batch_first_line, a->batch_last_line};
    a->ring_len++;
    a->bets_sent += a->batch_count;
    a->batches_sent++;
    buf_reset(&a->out);
    a->batch_count = 0;
    return true;
}

static void reject_row(struct agency *a, unsigned long line, const char *reason)
{
    a->rejected++;
    struct log_line l;
    log_line_begin(&l, LOG_WARNING, "apuesta_rechazada", "fail");
    log_line_cstr(&l, "file", a->ds.path);
    log_line_int(&l, "line", (int64_t)line);
    log_line_cstr(&l, "error", reason);
    log_line_end(&l);
}

/*
 * Adds one bet to the batch being filled, first sending that batch when it
 * already holds batch.maxAmount bets or the bet would push the frame past
 * PROTO_CLIENT_MAX_FRAME. The bet's strings are copied into the encoding, so
 * the CSV reader may move on afterwards. False once the session is over.
 */
static bool add_bet(struct agency *a, const struct bet *bet, unsigned long line)
{
    size_t size = proto_bet_encoded_size(bet);
    if (a->batch_count > 0 && (a->batch_count >= a->cfg->batch_max_amount ||
                               a->out.len - a->frame_off + size > PROTO_CLIENT_MAX_FRAME)) {
        if (!seal_batch(a)) {
            return false;
        }
    }
    if (a->batch_count == 0) {
        a->frame_off = proto_new_bets_begin(&a->out);
        if (a->out.len - a->frame_off + size > PROTO_CLIENT_MAX_FRAME) {
            /* Too big even alone: no frame can carry it. */
            buf_reset(&a->out);
            char why[96];
            (void)snprintf(why, sizeof(why),
                           "the bet encodes to %zu bytes; a frame holds at most %u", size,
                           PROTO_CLIENT_MAX_FRAME);
            reject_row(a, line, why);
            return true;
        }
        a->batch_first_line = line;
    }
    proto_new_bets_add(&a->out, bet);
    a->batch_count++;
    a->batch_last_line = line;
    return true;
}

/* Sends FINISHED once every batch is confirmed. */
static void send_finished(struct agency *a)
{
    if (!a->from_env) {
        struct log_line l;
        log_line_begin(&l, LOG_INFO, "apuestas_enviadas", "success");
        log_line_int(&l, "cantidad", (int64_t)a->bets_confirmed);
        log_line_int(&l, "batches", (int64_t)a->batches_confirmed);
        log_line_end(&l);
        if (a->rejected > 0) {
            log_line_begin(&l, LOG_WARNING, "apuestas_rechazadas", "fail");
            log_line_int(&l, "cantidad", (int64_t)a->rejected);
            log_line_end(&l);
        }
    }
    (void)evtimer_del(a->progress_timer); /* only a broken event base fails here */
    buf_reset(&a->out);
    proto_encode_finished(&a->out, a->cfg->id);
    if (bufferevent_write(a->bev, a->out.data, a->out.len) != 0) {
        agency_fail(a, "cannot queue FINISHED");
        return;
    }
    buf_reset(&a->out);
    a->state = AGENCY_WAIT_WINNERS;
}

/* Reads rows and sends batches until the window is full or the rows end. */
static void pump(struct agency *a)
{
    char why[256];
    while (a->state == AGENCY_SENDING && !a->eof && a->ring_len < a->cfg->batch_window) {
        if (a->from_env) {
            if (!add_bet(a, &a->env_bet, 0) || !seal_batch(a)) {
                return;
            }
            a->eof = true;
            break;
        }
        struct bet bet;
        unsigned long line = 0;
        why[0] = '\0';
        switch (dataset_next(&a->ds, a->cfg->id, &bet, &line, why, sizeof(why))) {
        case DATASET_BET:
            if (!add_bet(a, &bet, line)) {
                return;
            }
            break;
        case DATASET_REJECTED:
            reject_row(a, line, why);
            break;
        case DATASET_EOF:
            a->eof = true;
            close_dataset(a);
            if (a->batch_count > 0 && !seal_batch(a)) {
                return;
            }
            break;
        case DATASET_ERROR:
            agency_fail(a, why);
            return;
        }
    }
    if (a->state == AGENCY_SENDING && a->eof && a->ring_len == 0) {
        send_finished(a);
    }
}

/* ---- answers from the server -------------------------------------------------- */

static void count_winner(void *ctx, struct str document)
{
    (void)ctx;
    struct log_line l;
    log_line_begin(&l, LOG_DEBUG, "ganador", "success");
    log_line_str(&l, "dni", document);
    log_line_end(&l);
}

/* Handles one frame; false once the session is over. */
static bool handle_frame(struct agency *a, const struct frame_header *hdr, const uint8_t *body)
{
    char why[160];
    switch (hdr->opcode) {
    case OP_BETS_RECV_SUCCESS:
    case OP_BETS_RECV_FAIL: {
        if (a->state != AGENCY_SENDING || a->ring_len == 0) {
            (void)snprintf(why, sizeof(why), "unexpected %s", opcode_name(hdr->opcode));
            agency_fail(a, why);
            return false;
        }
        struct inflight batch = a->ring[a->ring_head];
        if (hdr->opcode == OP_BETS_RECV_FAIL) {
            if (a->from_env) {
                agency_fail(a, "the server rejected the bet (BETS_RECV_FAIL)");
            } else {
                (void)snprintf(why, sizeof(why),
                               "the server rejected batch %" PRIu64 " (%" PRIu32
                               " bets, lines %lu-%lu) with BETS_RECV_FAIL",
                               a->batches_confirmed + 1, batch.count, batch.first_line,
                               batch.last_line);
                agency_fail(a, why);
            }
            return false;
        }
        a->ring_head = (a->ring_head + 1) % a->cfg->batch_window;
        a->ring_len--;
        a->bets_confirmed += batch.count;
        a->batches_confirmed++;
        if (a->from_env) {
            struct log_line l;
            log_line_begin(&l, LOG_INFO, "apuesta_enviada", "success");
            log_line_str(&l, "dni", a->env_bet.document);
            log_line_int(&l, "numero", a->env_bet.number);
            log_line_end(&l);
        }
        return true;
    }
    case OP_WINNERS: {
        if (a->state != AGENCY_WAIT_WINNERS) {
            agency_fail(a, "WINNERS arrived before FINISHED was sent");
            return false;
        }
        uint32_t count = 0;
        if (!proto_decode_winners(body, hdr->body_len, &count, count_winner, a, why, sizeof(why))) {
            agency_fail(a, why);
            return false;
        }
        struct log_line l;
        log_line_begin(&l, LOG_INFO, "consulta_ganadores", "success");
        log_line_int(&l, "cant_ganadores", count);
        log_line_end(&l);
        agency_close(a);
        a->done(a->done_ctx, a->rejected > 0 ? AGENCY_EXIT_REJECTED_ROWS : 0);
        return false;
    }
    default:
        (void)snprintf(why, sizeof(why), "unexpected %s frame from the server",
                       opcode_name(hdr->opcode));
        agency_fail(a, why);
        return false;
    }
}

static void agency_read_cb(struct bufferevent *bev, void *arg)
{
    struct agency *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct frame_header hdr;
        const uint8_t *frame = NULL;
        const char *reason = NULL;
        enum proto_status st = evframe_peek(in, PROTO_DEFAULT_MAX_BODY, &hdr, &frame, &reason);
        if (st == PROTO_NEED_MORE) {
            break;
        }
        if (st == PROTO_ERROR) {
            agency_fail(a, reason);
            return;
        }
        if (!handle_frame(a, &hdr, frame + PROTO_HEADER_LEN)) {
            return; /* the bufferevent is gone */
        }
        evframe_drop(in, &hdr);
    }
    /* Refill the window once per read, after every answer in it. */
    pump(a);
}

static void agency_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    agency_fail(arg, bev_error_reason(what));
}

/* ---- set-up ------------------------------------------------------------------ */

/* The environment bet; all five variables are needed. */
static int load_env_bet(struct agency *a, char *err, size_t errlen)
{
    static const char *const names[] = {"NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO", "NUMERO"};
    const char *values[5];
    size_t present = 0;
    char missing[64] = "";
    for (size_t i = 0; i < 5; i++) {
        values[i] = getenv(names[i]);
        if (values[i] != NULL && values[i][0] != '\0') {
            present++;
        } else {
            size_t used = strlen(missing);
            (void)snprintf(missing + used, sizeof(missing) - used, "%s%s", used > 0 ? ", " : "",
                           names[i]);
        }
    }
    if (present == 0) {
        (void)snprintf(err, errlen,
                       "no bets to send: dataset %s does not exist and the environment has no bet "
                       "(NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO)",
                       a->cfg->dataset);
        return -1;
    }
    if (present < 5) {
        (void)snprintf(err, errlen, "the environment bet is incomplete: missing %s", missing);
        return -1;
    }
    int64_t number;
    if (!str_to_i64(str_make(values[4], strlen(values[4])), 0, INT32_MAX, &number)) {
        (void)snprintf(err, errlen, "NUMERO: '%s' is not an integer from 0 to 2147483647",
                       values[4]);
        return -1;
    }
    a->env_bet = (struct bet){
        .agency = a->cfg->id,
        .first_name = str_make(values[0], strlen(values[0])),
        .last_name = str_make(values[1], strlen(values[1])),
        .document = str_make(values[2], strlen(values[2])),
        .birthdate = str_make(values[3], strlen(values[3])),
        .number = (int32_t)number,
    };
    char why[192];
    if (!bet_validate(&a->env_bet, why, sizeof(why))) {
        (void)snprintf(err, errlen, "the environment bet is invalid: %s", why);
        return -1;
    }
    if (PROTO_HEADER_LEN + 4 + proto_bet_encoded_size(&a->env_bet) > PROTO_CLIENT_MAX_FRAME) {
        (void)snprintf(err, errlen, "the environment bet does not fit in a %u-byte frame",
                       PROTO_CLIENT_MAX_FRAME);
        return -1;
    }
    a->from_env = true;
    return 0;
}

struct agency *agency_new(struct event_base *base, const struct client_config *cfg,
                          session_done_fn done, void *ctx, char *err, size_t errlen)
{
    struct agency *a = xcalloc(1, sizeof(*a));
    a->base = base;
    a->cfg = cfg;
    a->done = done;
    a->done_ctx = ctx;
    a->state = AGENCY_IDLE;
    dataset_init(&a->ds);
    buf_init(&a->out);

    struct stat st;
    bool exists = stat(cfg->dataset, &st) == 0;
    if (!exists && (errno != ENOENT || cfg->dataset_explicit)) {
        (void)snprintf(err, errlen, "dataset %s: %s", cfg->dataset, strerror(errno));
        goto fail;
    }
    if (exists) {
        if (dataset_open(&a->ds, cfg->dataset, err, errlen) != 0) {
            goto fail;
        }
        struct log_line l;
        log_line_begin(&l, LOG_INFO, "open_dataset", "success");
        log_line_cstr(&l, "file", cfg->dataset);
        log_line_int(&l, "total", (int64_t)a->ds.total);
        log_line_end(&l);
    } else if (load_env_bet(a, err, errlen) != 0) {
        goto fail;
    }

    a->ring = xcalloc(cfg->batch_window, sizeof(*a->ring));
    a->progress_timer = event_new(base, -1, EV_PERSIST, progress_cb, a);
    if (a->progress_timer == NULL) {
        (void)snprintf(err, errlen, "cannot create the progress timer");
        goto fail;
    }
    return a;

fail:
    agency_free(a);
    return NULL;
}

void agency_start(struct agency *a, struct bufferevent *bev)
{
    a->bev = bev;
    a->state = AGENCY_SENDING;
    bufferevent_setcb(bev, agency_read_cb, NULL, agency_event_cb, a);
    if (bufferevent_enable(bev, EV_READ) != 0) {
        agency_fail(a, "cannot read from the connection");
        return;
    }
    if (!a->from_env) {
        struct timeval second = {1, 0};
        if (evtimer_add(a->progress_timer, &second) != 0) {
            agency_fail(a, "cannot start the progress timer");
            return;
        }
    }
    pump(a);
}

void agency_stop(struct agency *a)
{
    if (a->state == AGENCY_SENDING && !a->from_env) {
        struct log_line l;
        log_line_begin(&l, LOG_WARNING, "apuestas_enviadas", "fail");
        log_line_int(&l, "cantidad", (int64_t)a->bets_confirmed);
        log_line_int(&l, "batches", (int64_t)a->batches_confirmed);
        log_line_cstr(&l, "error", "interrupted by a signal");
        log_line_end(&l);
    }
    agency_close(a);
}

void agency_free(struct agency *a)
{
    if (a == NULL) {
        return;
    }
    agency_close(a);
    if (a->progress_timer != NULL) {
        event_free(a->progress_timer);
    }
    free(a->ring);
    buf_free(&a->out);
    free(a);
}
