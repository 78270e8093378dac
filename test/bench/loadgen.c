/*
 * loadgen: a load generator for the lottery server.
 *
 * One libevent loop drives A agency connections. Every agency's NEW_BETS frames
 * are encoded ahead of time with the core codec (so the timed part only moves
 * bytes), then sent pipelined with a window of batches in flight; answers are
 * matched in order and each batch's latency (queued -> answer parsed) recorded.
 * Once an agency's last batch is acknowledged it sends FINISHED and waits for
 * its WINNERS, which are checked against the winners it generated.
 *
 * Output: a human summary and one machine-readable line starting with RESULT.
 * Exit code 0 on success, 1 on any failure (a FAIL answer, a closed connection,
 * a wrong winner count, a timeout), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "tp0/bet.h"
#include "tp0/buf.h"
#include "tp0/evframe.h"
#include "tp0/protocol.h"
#include "tp0/util.h"

/* Where an agency is in its life. */
enum agency_state {
    AG_IDLE,          /* not connected yet */
    AG_CONNECTING,    /* connect() in progress */
    AG_CONNECTED,     /* waiting for every other agency to connect */
    AG_SENDING,       /* batches going out */
    AG_FINISHED_SENT, /* FINISHED sent, waiting for WINNERS */
    AG_DONE,          /* WINNERS received and checked; connection closed */
};

struct bench;

struct agency {
    struct bench *bench;
    int32_t id;
    enum agency_state state;
    struct bufferevent *bev;
    struct buf frames; /* every NEW_BETS frame of this agency, back to back */
    size_t *batch_end; /* batch i spans [batch_end[i-1], batch_end[i]) */
    uint32_t nbatches;
    uint32_t sent;     /* batches queued for sending */
    uint32_t acked;    /* answers received, in order */
    uint64_t *sent_at; /* ring of window send times, indexed by batch % window */
    uint32_t expected_winners;
    uint64_t expected_doc_sum; /* sum of the winners' document numbers */
};

struct options {
    const char *host;
    const char *port;
    uint32_t agencies;
    uint32_t bets;
    uint32_t window;
    uint64_t seed;
    int32_t first_agency;
    uint32_t batch_bytes;
    uint32_t win_permille;
    uint32_t max_connecting;
    uint32_t timeout_s;
    long server_pid;
};

struct bench {
    struct options opt;
    struct event_base *base;
    struct event *timeout_ev;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct agency *ag;
    uint32_t next_connect; /* next agency to start connecting */
    uint32_t connecting;   /* connects in progress */
    uint32_t connected;
    uint32_t done;
    uint64_t *lat; /* one latency per batch, in ns */
    size_t nlat;
    size_t lat_cap;
    uint64_t total_bets;
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    uint64_t expected_winners;
    uint64_t winners;
    uint64_t t_connect_start;
    uint64_t t_connected;
    uint64_t t_last_ack;
    uint64_t t_last_finished;
    uint64_t t_last_winners;
    long rss_connected_kib; /* server VmRSS once every agency is connected */
    int failed;
};

static long proc_status_kib(long pid, const char *key);

static uint64_t now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux; a zero would only skew figures. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reports an error, marks the run failed and stops the loop. */
static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)fputs("loadgen: error: ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputc('\n', stderr);
    va_end(ap);
    if (!b->failed) {
        b->failed = 1;
        event_base_loopbreak(b->base);
    }
}

/* ---------------------------------------------------------------- bet data */

/* splitmix64: small, fast and good enough to make varied synthetic bets. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static const char *const first_names[] = {
    "Santiago Lionel", "Agustin Emanuel", "Tiago Nicolás", "María José",
    "Valentina",       "Juan Pablo",      "Sofía",         "Mateo",
    "Martina",         "Benjamín",        "Lucía Belén",   "Joaquín",
    "Camila",          "Tomás",           "Julieta",       "Ramón",
};
static const char *const last_names[] = {
    "Lorca",  "Zambrano", "Rivera",  "González", "Rodríguez", "Fernández", "López", "Martínez",
    "García", "Pérez",    "Sánchez", "Romero",   "Díaz",      "Álvarez",   "Peña",  "Acuña",
};
#define NAMES_MASK 15u

/*
 * Fills *bet with agency a's bet number i; doc and date (16 bytes each) back its
 * strings. A deterministic fraction (win_permille per thousand) of the numbers
 * is the winning one and every other number avoids it, so the expected winners
 * are exact.
 */
static int synth_bet(struct agency *a, uint32_t i, uint32_t win_permille, uint64_t *rng,
                     char doc[16], char date[16], struct bet *bet)
{
    uint64_t r = rng_next(rng);
    /* 8-digit documents, distinct within an agency for up to 9*10^7 bets. */
    uint64_t docnum = 10000000u + ((uint64_t)(uint32_t)a->id * 7919u + i) % 90000000u;
    int dl = snprintf(doc, 16, "%" PRIu64, docnum);
    int tl = snprintf(date, 16, "%04u-%02u-%02u", 1940u + (unsigned)(r % 66u),
                      1u + (unsigned)((r >> 8) % 12u), 1u + (unsigned)((r >> 16) % 28u));
    if (dl <= 0 || dl >= 16 || tl <= 0 || tl >= 16) {
        fprintf(stderr, "loadgen: error: formatting a bet failed\n");
        return -1;
    }
    int32_t number;
    if ((r >> 24) % 1000u < win_permille) {
        number = WINNING_NUMBER;
        a->expected_winners++;
        a->expected_doc_sum += docnum;
    } else {
        number = (int32_t)((r >> 40) % 10000u);
        if (number == WINNING_NUMBER) {
            number++;
        }
    }
    const char *fn = first_names[(r >> 4) & NAMES_MASK];
    const char *ln = last_names[(r >> 12) & NAMES_MASK];
    *bet = (struct bet){
        .agency = a->id,
        .first_name = str_make(fn, strlen(fn)),
        .last_name = str_make(ln, strlen(ln)),
        .document = str_make(doc, (size_t)dl),
        .birthdate = str_make(date, (size_t)tl),
        .number = number,
    };
    return 0;
}

/* Encodes an agency's bets into NEW_BETS frames of at most opt->batch_bytes
 * bytes, header included. */
static int agency_encode(struct bench *b, struct agency *a)
{
    const struct options *o = &b->opt;
    uint64_t rng = o->seed ^ ((uint64_t)(uint32_t)a->id * 0x100000001b3u);
    size_t cap = 16;
    size_t frame = 0;
    uint32_t in_frame = 0;
    bool open = false;

    a->batch_end = xmalloc(cap * sizeof(*a->batch_end));
    for (uint32_t i = 0; i <= o->bets; i++) {
        struct bet bet;
        char doc[16];
        char date[16];
        size_t need = 0;
        if (i < o->bets) {
            if (synth_bet(a, i, o->win_permille, &rng, doc, date, &bet) != 0) {
                return -1;
            }
            need = proto_bet_encoded_size(&bet);
            if (PROTO_HEADER_LEN + 4 + need > o->batch_bytes) {
                fprintf(stderr, "loadgen: error: a %zu-byte bet does not fit a %u-byte batch\n",
                        need, o->batch_bytes);
                return -1;
            }
        }
        /* Close the open frame when this bet would overflow it, or at the end. */
        if (open && (i == o->bets || a->frames.len - frame + need > o->batch_bytes)) {
            proto_new_bets_end(&a->frames, frame, in_frame);
            if (a->nbatches == cap) {
                cap *= 2;
                a->batch_end = xrealloc(a->batch_end, cap * sizeof(*a->batch_end));
            }
            a->batch_end[a->nbatches++] = a->frames.len;
            open = false;
        }
        if (i == o->bets) {
            break;
        }
        if (!open) {
            frame = proto_new_bets_begin(&a->frames);
            in_frame = 0;
            open = true;
        }
        proto_new_bets_add(&a->frames, &bet);
        in_frame++;
    }
    return 0;
}

/* ------------------------------------------------------------- connections */

static void send_finished(struct agency *a, uint64_t now)
{
    struct bench *b = a->bench;
    struct buf fin = BUF_INIT;
    proto_encode_finished(&fin, a->id);
    if (bufferevent_write(a->bev, fin.data, fin.len) != 0) {
        buf_free(&fin);
        fail(b, "agency %" PRId32 ": cannot queue FINISHED", a->id);
        return;
    }
    b->tx_bytes += fin.len;
    buf_free(&fin);
    a->state = AG_FINISHED_SENT;
    b->t_last_finished = now;
}

/* Queues batches until the window is full or every batch is out. */
static void agency_fill_window(struct agency *a, uint64_t now)
{
    struct bench *b = a->bench;
    struct evbuffer *out = bufferevent_get_output(a->bev);
    while (a->sent < a->nbatches && a->sent - a->acked < b->opt.window) {
        size_t start = a->sent == 0 ? 0 : a->batch_end[a->sent - 1];
        size_t len = a->batch_end[a->sent] - start;
        /* By reference: the frames outlive the loop, so nothing is copied. */
        if (evbuffer_add_reference(out, a->frames.data + start, len, NULL, NULL) != 0) {
            fail(b, "agency %" PRId32 ": cannot queue batch %" PRIu32, a->id, a->sent);
            return;
        }
        a->sent_at[a->sent % b->opt.window] = now;
        b->tx_bytes += len;
        a->sent++;
    }
    if (a->acked == a->nbatches && a->state == AG_SENDING) {
        send_finished(a, now);
    }
}

static void start_sending(struct bench *b)
{
    uint64_t now = now_ns();
    b->t_connected = now;
    if (b->opt.server_pid > 0) {
        b->rss_connected_kib = proc_status_kib(b->opt.server_pid, "VmRSS");
    }
    for (uint32_t i = 0; i < b->opt.agencies && !b->failed; i++) {
        b->ag[i].state = AG_SENDING;
        agency_fill_window(&b->ag[i], now);
    }
}

struct winners_ctx {
    uint64_t doc_sum;
    bool bad;
};

static void winner_cb(void *ctx, struct str document)
{
    struct winners_ctx *w = ctx;
    int64_t v;
    if (!str_to_i64(document, 0, INT64_MAX, &v)) {
        w->bad = true;
        return;
    }
    w->doc_sum += (uint64_t)v;
}

/* One complete WINNERS frame at the front of `in`. */
static void agency_winners(struct agency *a, const uint8_t *body, uint32_t body_len)
{
    struct bench *b = a->bench;
    if (a->state != AG_FINISHED_SENT) {
        fail(b, "agency %" PRId32 ": WINNERS arrived before FINISHED was sent", a->id);
        return;
    }
    struct winners_ctx w = {0, false};
    uint32_t count = 0;
    char err[128];
    if (!proto_decode_winners(body, body_len, &count, winner_cb, &w, err, sizeof(err))) {
        fail(b, "agency %" PRId32 ": malformed WINNERS: %s", a->id, err);
        return;
    }
    if (w.bad || count != a->expected_winners || w.doc_sum != a->expected_doc_sum) {
        fail(b,
             "agency %" PRId32 ": got %" PRIu32 " winners (document sum %" PRIu64
             "), expected %" PRIu32 " (document sum %" PRIu64 ")",
             a->id, count, w.doc_sum, a->expected_winners, a->expected_doc_sum);
        return;
    }
    b->winners += count;
    b->rx_bytes += PROTO_HEADER_LEN + body_len;
    b->t_last_winners = now_ns();
    a->state = AG_DONE;
    /* Nothing more is expected: close our side now (freeing a bufferevent from
     * its own callback is safe, libevent defers the actual free). */
    bufferevent_free(a->bev);
    a->bev = NULL;
    if (++b->done == b->opt.agencies) {
        event_base_loopbreak(b->base);
    }
}

static void read_cb(struct bufferevent *bev, void *ctx)
{
    struct agency *a = ctx;
    struct bench *b = a->bench;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint64_t now = 0;
    bool refill = false;

    while (!b->failed && a->state != AG_DONE) {
        struct frame_header hdr;
        const uint8_t *frame = NULL;
        const char *reason = NULL;
        enum proto_status st = evframe_peek(in, PROTO_DEFAULT_MAX_BODY, &hdr, &frame, &reason);
        if (st == PROTO_NEED_MORE) {
            break;
        }
        if (st == PROTO_ERROR) {
            fail(b, "agency %" PRId32 ": bad frame from the server: %s", a->id,
                 reason ? reason : "?");
            return;
        }
        switch (hdr.opcode) {
        case OP_BETS_RECV_SUCCESS:
        case OP_BETS_RECV_FAIL:
            if (a->acked >= a->sent) {
                fail(b, "agency %" PRId32 ": %s without a batch in flight", a->id,
                     opcode_name(hdr.opcode));
                return;
            }
            if (hdr.opcode == OP_BETS_RECV_FAIL) {
                fail(b, "agency %" PRId32 ": batch %" PRIu32 " answered BETS_RECV_FAIL", a->id,
                     a->acked);
                return;
            }
            if (now == 0) {
                now = now_ns();
            }
            if (b->nlat < b->lat_cap) {
                b->lat[b->nlat++] = now - a->sent_at[a->acked % b->opt.window];
            }
            a->acked++;
            b->t_last_ack = now;
            refill = true;
            break;
        case OP_WINNERS:
            agency_winners(a, frame + PROTO_HEADER_LEN, hdr.body_len);
            /* On success the bufferevent is gone: do not touch `in`. */
            return;
        default:
            fail(b, "agency %" PRId32 ": unexpected %s frame", a->id, opcode_name(hdr.opcode));
            return;
        }
        b->rx_bytes += PROTO_HEADER_LEN + hdr.body_len;
        evframe_drop(in, &hdr);
    }
    if (refill && !b->failed && a->state == AG_SENDING) {
        agency_fill_window(a, now);
    }
}

static void start_connects(struct bench *b);

static void event_cb(struct bufferevent *bev, short what, void *ctx)
{
    struct agency *a = ctx;
    struct bench *b = a->bench;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        a->state = AG_CONNECTED;
        b->connecting--;
        b->connected++;
        if (b->connected == b->opt.agencies) {
            start_sending(b);
        } else {
            start_connects(b);
        }
        return;
    }
    if (a->state == AG_CONNECTING) {
        int e = EVUTIL_SOCKET_ERROR();
        fail(b, "agency %" PRId32 ": cannot connect to %s:%s: %s", a->id, b->opt.host, b->opt.port,
             e ? evutil_socket_error_to_string(e) : "connection failed");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        fail(b,
             "agency %" PRId32 ": the server closed the connection (%" PRIu32 "/%" PRIu32
             " batches answered%s)",
             a->id, a->acked, a->nbatches,
             a->state == AG_FINISHED_SENT ? ", FINISHED sent, no WINNERS" : "");
    } else {
        int e = EVUTIL_SOCKET_ERROR();
        fail(b, "agency %" PRId32 ": connection error: %s (%" PRIu32 "/%" PRIu32 " answered)",
             a->id, e ? evutil_socket_error_to_string(e) : "unknown", a->acked, a->nbatches);
    }
}

static int agency_connect(struct bench *b, struct agency *a)
{
    int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail(b, "agency %" PRId32 ": socket: %s", a->id, strerror(errno));
        return -1;
    }
    /* Whole frames are written at once; Nagle would only delay them. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        fail(b, "agency %" PRId32 ": TCP_NODELAY: %s", a->id, strerror(errno));
        close(fd);
        return -1;
    }
    a->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (a->bev == NULL) {
        close(fd);
        fail(b, "agency %" PRId32 ": cannot create a bufferevent", a->id);
        return -1;
    }
    bufferevent_setcb(a->bev, read_cb, NULL, event_cb, a);
    if (bufferevent_enable(a->bev, EV_READ | EV_WRITE) != 0) {
        fail(b, "agency %" PRId32 ": cannot enable the bufferevent", a->id);
        return -1;
    }
    a->state = AG_CONNECTING;
    b->connecting++;
    if (bufferevent_socket_connect(a->bev, (struct sockaddr *)&b->addr, (int)b->addr_len) != 0) {
        int e = EVUTIL_SOCKET_ERROR();
        fail(b, "agency %" PRId32 ": cannot connect to %s:%s: %s", a->id, b->opt.host, b->opt.port,
             evutil_socket_error_to_string(e));
        return -1;
    }
    return 0;
}

/* Keeps at most max_connecting connects in flight, so thousands of SYNs do not
 * overflow the server's accept backlog all at once. */
static void start_connects(struct bench *b)
{
    while (!b->failed && b->next_connect < b->opt.agencies &&
           b->connecting < b->opt.max_connecting) {
        if (agency_connect(b, &b->ag[b->next_connect++]) != 0) {
            return;
        }
    }
}

static void timeout_cb(evutil_socket_t fd, short what, void *ctx)
{
    struct bench *b = ctx;
    (void)fd;
    (void)what;
    uint64_t acked = 0, batches = 0;
    for (uint32_t i = 0; i < b->opt.agencies; i++) {
        acked += b->ag[i].acked;
        batches += b->ag[i].nbatches;
    }
    fail(b,
         "timed out after %" PRIu32 " s: %" PRIu32 "/%" PRIu32 " connected, %" PRIu64 "/%" PRIu64
         " batches answered, %" PRIu32 "/%" PRIu32 " WINNERS received",
         b->opt.timeout_s, b->connected, b->opt.agencies, acked, batches, b->done, b->opt.agencies);
}

/* ----------------------------------------------------------------- figures */

/* A "VmHWM:" style line of /proc/<pid>/status in KiB, or -1. */
static long proc_status_kib(long pid, const char *key)
{
    char path[64];
    char line[256];
    size_t klen = strlen(key);
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            char *end;
            errno = 0;
            long v = strtol(line + klen + 1, &end, 10);
            if (errno == 0 && end != line + klen + 1) {
                kib = v;
            }
            break;
        }
    }
    (void)fclose(f); /* read-only: nothing to lose */
    return kib;
}

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile of a sorted array. */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0.0;
    }
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)v[rank - 1] / 1e6;
}

static double secs(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1e9 : 0.0;
}

static void report(struct bench *b, double encode_s)
{
    const struct options *o = &b->opt;
    qsort(b->lat, b->nlat, sizeof(*b->lat), cmp_u64);
    double p50 = pct_ms(b->lat, b->nlat, 50.0);
    double p99 = pct_ms(b->lat, b->nlat, 99.0);
    double pmax = b->nlat ? (double)b->lat[b->nlat - 1] / 1e6 : 0.0;
    double connect_s = secs(b->t_connect_start, b->t_connected);
    double ingest_s = secs(b->t_connected, b->t_last_ack);
    double raffle_s = secs(b->t_last_finished, b->t_last_winners);
    double total_s = secs(b->t_connect_start, b->t_last_winners);
    double rate = ingest_s > 0 ? (double)b->total_bets / ingest_s : 0.0;
    long hwm = o->server_pid > 0 ? proc_status_kib(o->server_pid, "VmHWM") : -1;
    long rss = o->server_pid > 0 ? proc_status_kib(o->server_pid, "VmRSS") : -1;

    printf("loadgen: %" PRIu32 " agencies x %" PRIu32 " bets = %" PRIu64 " bets in %zu batches "
           "(window %" PRIu32 ", <= %" PRIu32 " B per batch), encoded in %.2f s\n",
           o->agencies, o->bets, b->total_bets, b->nlat, o->window, o->batch_bytes, encode_s);
    printf("  connect  %8.3f s  (%" PRIu32 " connections)\n", connect_s, o->agencies);
    printf("  ingest   %8.3f s  %.0f bets/s, batch latency p50 %.2f ms, p99 %.2f ms, "
           "max %.2f ms\n",
           ingest_s, rate, p50, p99, pmax);
    printf("  raffle   %8.3f s  (last FINISHED sent -> last WINNERS received)\n", raffle_s);
    printf("  total    %8.3f s  wire: %" PRIu64 " B sent, %" PRIu64 " B received\n", total_s,
           b->tx_bytes, b->rx_bytes);
    printf("  winners  %" PRIu64 " received, %" PRIu64 " expected\n", b->winners,
           b->expected_winners);
    if (o->server_pid > 0) {
        printf("  server   pid %ld: peak RSS (VmHWM) %.1f MiB, RSS with all connected %.1f MiB, "
               "RSS now %.1f MiB\n",
               o->server_pid, (double)hwm / 1024.0, (double)b->rss_connected_kib / 1024.0,
               (double)rss / 1024.0);
    }
    printf("RESULT agencies=%" PRIu32 " bets_per_agency=%" PRIu32 " bets=%" PRIu64
           " batches=%zu window=%" PRIu32 " connect_s=%.3f ingest_s=%.3f bets_per_s=%.0f"
           " p50_ms=%.3f p99_ms=%.3f max_ms=%.3f raffle_s=%.3f total_s=%.3f tx_bytes=%" PRIu64
           " rx_bytes=%" PRIu64 " winners=%" PRIu64 " expected_winners=%" PRIu64
           " server_hwm_kib=%ld server_rss_connected_kib=%ld\n",
           o->agencies, o->bets, b->total_bets, b->nlat, o->window, connect_s, ingest_s, rate, p50,
           p99, pmax, raffle_s, total_s, b->tx_bytes, b->rx_bytes, b->winners, b->expected_winners,
           hwm, b->rss_connected_kib);
    (void)fflush(stdout);
}

/* ------------------------------------------------------------------- setup */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen [-h host] [-p port] [-a agencies] [-b bets-per-agency]\n"
               "               [-w window] [-s seed] [--first-agency N] [--server-pid PID]\n"
               "               [--batch-bytes N] [--win-permille N] [--max-connecting N]\n"
               "               [--timeout SECONDS]\n"
               "  -h host            server address (127.0.0.1)\n"
               "  -p port            server port (12345)\n"
               "  -a agencies        agency connections (5)\n"
               "  -b bets            bets per agency (1000)\n"
               "  -w window          batches in flight per agency (4)\n"
               "  -s seed            seed of the synthetic bets (1)\n"
               "  --first-agency N   id of the first agency (1); ids are N..N+agencies-1\n"
               "  --server-pid PID   read the server's peak RSS from /proc/PID/status\n"
               "  --batch-bytes N    largest NEW_BETS frame, header included (8192)\n"
               "  --win-permille N   winning bets per thousand (1)\n"
               "  --max-connecting N connects in flight at once (256)\n"
               "  --timeout S        give up after S seconds (600)\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    int64_t v;
    if (!str_to_i64(str_make(s, strlen(s)), (int64_t)min,
                    max > INT64_MAX ? INT64_MAX : (int64_t)max, &v)) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_FIRST = 256, OPT_PID, OPT_BATCH, OPT_WIN, OPT_MAXCONN, OPT_TIMEOUT, OPT_HELP };
    static const struct option longopts[] = {
        {"first-agency", required_argument, NULL, OPT_FIRST},
        {"server-pid", required_argument, NULL, OPT_PID},
        {"batch-bytes", required_argument, NULL, OPT_BATCH},
        {"win-permille", required_argument, NULL, OPT_WIN},
        {"max-connecting", required_argument, NULL, OPT_MAXCONN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){
        .host = "127.0.0.1",
        .port = "12345",
        .agencies = 5,
        .bets = 1000,
        .window = 4,
        .seed = 1,
        .first_agency = 1,
        .batch_bytes = PROTO_CLIENT_MAX_FRAME,
        .win_permille = 1,
        .max_connecting = 256,
        .timeout_s = 600,
        .server_pid = 0,
    };
    int c;
    while ((c = getopt_long(argc, argv, "h:p:a:b:w:s:", longopts, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (c) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 'a':
            ok = parse_u64(optarg, 1, 1000000, &v);
            o->agencies = (uint32_t)v;
            break;
        case 'b':
            ok = parse_u64(optarg, 0, 100000000, &v);
            o->bets = (uint32_t)v;
            break;
        case 'w':
            ok = parse_u64(optarg, 1, 1000000, &v);
            o->window = (uint32_t)v;
            break;
        case 's':
            ok = parse_u64(optarg, 0, INT64_MAX, &v);
            o->seed = v;
            break;
        case OPT_FIRST:
            ok = parse_u64(optarg, 1, INT32_MAX, &v);
            o->first_agency = (int32_t)v;
            break;
        case OPT_PID:
            ok = parse_u64(optarg, 1, INT32_MAX, &v);
            o->server_pid = (long)v;
            break;
        case OPT_BATCH:
            ok = parse_u64(optarg, 64, PROTO_DEFAULT_MAX_BODY, &v);
            o->batch_bytes = (uint32_t)v;
            break;
        case OPT_WIN:
            ok = parse_u64(optarg, 0, 1000, &v);
            o->win_permille = (uint32_t)v;
            break;
        case OPT_MAXCONN:
            ok = parse_u64(optarg, 1, 1000000, &v);
            o->max_connecting = (uint32_t)v;
            break;
        case OPT_TIMEOUT:
            ok = parse_u64(optarg, 1, 86400, &v);
            o->timeout_s = (uint32_t)v;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (!ok) {
            char name[32];
            if (c < 256) {
                snprintf(name, sizeof(name), "-%c", c);
            } else {
                snprintf(name, sizeof(name), "--%s", longopts[c - OPT_FIRST].name);
            }
            fprintf(stderr, "loadgen: bad value for %s: %s\n", name, optarg);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "loadgen: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    if ((int64_t)o->first_agency + o->agencies - 1 > INT32_MAX) {
        fprintf(stderr, "loadgen: agency ids would overflow int32\n");
        return -1;
    }
    return 0;
}

/* Every connection needs a descriptor: raise the soft limit up to the hard one. */
static int raise_nofile(uint32_t agencies)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)agencies + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "loadgen: error: getrlimit: %s\n", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
            fprintf(stderr,
                    "loadgen: error: %" PRIu32 " connections need %llu descriptors, but the hard "
                    "limit is %llu (raise it: ulimit -Hn)\n",
                    agencies, (unsigned long long)need, (unsigned long long)rl.rlim_max);
            return -1;
        }
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            fprintf(stderr, "loadgen: error: setrlimit(RLIMIT_NOFILE, %llu): %s\n",
                    (unsigned long long)need, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int resolve(struct bench *b)
{
    struct addrinfo hints = {0};
    struct addrinfo *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(b->opt.host, b->opt.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: error: cannot resolve %s:%s: %s\n", b->opt.host, b->opt.port,
                gai_strerror(rc));
        return -1;
    }
    if (res->ai_addrlen > sizeof(b->addr)) {
        freeaddrinfo(res);
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench bench = {0};
    struct bench *b = &bench;
    int rc = 1;

    if (parse_options(argc, argv, &b->opt) != 0) {
        return 2;
    }
    if (raise_nofile(b->opt.agencies) != 0 || resolve(b) != 0) {
        return 1;
    }

    /* Everything is encoded before the clock starts. */
    uint64_t t0 = now_ns();
    b->ag = xcalloc(b->opt.agencies, sizeof(*b->ag));
    size_t batches = 0;
    for (uint32_t i = 0; i < b->opt.agencies; i++) {
        struct agency *a = &b->ag[i];
        a->bench = b;
        a->id = b->opt.first_agency + (int32_t)i;
        buf_init(&a->frames);
        a->sent_at = xcalloc(b->opt.window, sizeof(*a->sent_at));
        if (agency_encode(b, a) != 0) {
            goto out;
        }
        batches += a->nbatches;
        b->total_bets += b->opt.bets;
        b->expected_winners += a->expected_winners;
    }
    double encode_s = secs(t0, now_ns());
    b->lat = xmalloc(batches * sizeof(*b->lat));
    b->lat_cap = batches;

    b->base = event_base_new();
    if (b->base == NULL) {
        fprintf(stderr, "loadgen: error: cannot create the event base\n");
        goto out;
    }
    b->timeout_ev = evtimer_new(b->base, timeout_cb, b);
    struct timeval tv = {(time_t)b->opt.timeout_s, 0};
    if (b->timeout_ev == NULL || evtimer_add(b->timeout_ev, &tv) != 0) {
        fprintf(stderr, "loadgen: error: cannot arm the timeout\n");
        goto out;
    }

    b->rss_connected_kib = -1;
    b->t_connect_start = now_ns();
    start_connects(b);
    if (!b->failed) {
        if (event_base_dispatch(b->base) < 0) {
            fprintf(stderr, "loadgen: error: the event loop failed\n");
            goto out;
        }
    }
    if (b->failed) {
        goto out;
    }
    if (b->done != b->opt.agencies) {
        fprintf(stderr, "loadgen: error: the loop ended with %" PRIu32 "/%" PRIu32 " done\n",
                b->done, b->opt.agencies);
        goto out;
    }
    if (b->winners != b->expected_winners) {
        fprintf(stderr, "loadgen: error: %" PRIu64 " winners received, %" PRIu64 " expected\n",
                b->winners, b->expected_winners);
        goto out;
    }
    report(b, encode_s);
    rc = 0;

out:
    for (uint32_t i = 0; b->ag != NULL && i < b->opt.agencies; i++) {
        if (b->ag[i].bev != NULL) {
            bufferevent_free(b->ag[i].bev);
        }
        buf_free(&b->ag[i].frames);
        free(b->ag[i].batch_end);
        free(b->ag[i].sent_at);
    }
    free(b->ag);
    free(b->lat);
    if (b->timeout_ev != NULL) {
        event_free(b->timeout_ev);
    }
    if (b->base != NULL) {
        event_base_free(b->base);
    }
    return rc;
}
