/* Connecting to the server with backoff, and framing the input. */
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tp0/log.h"
#include "tp0/util.h"

struct connector {
    struct event_base *base;
    const struct client_config *cfg;
    connect_done_fn done;
    void *ctx;
    struct event *retry_timer;
    struct bufferevent *bev;    /* the attempt in progress, or NULL */
    struct addrinfo *addrs;     /* this attempt's resolved addresses */
    struct addrinfo *next_addr; /* the address being tried */
    int64_t deadline_ns;        /* CLOCK_MONOTONIC time to give up at */
    unsigned attempt;
    int64_t delay_ms;
    char last_error[160];
};

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0; /* cannot happen for CLOCK_MONOTONIC */
    }
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void attempt_start(struct connector *c);
static void try_next_address(struct connector *c);

static void set_error(struct connector *c, const char *what, const char *why)
{
    (void)snprintf(c->last_error, sizeof(c->last_error), "%s: %s", what, why);
}

/* Every address of this attempt failed: wait and retry, or give up. */
static void attempt_failed(struct connector *c)
{
    if (c->addrs != NULL) {
        freeaddrinfo(c->addrs);
        c->addrs = NULL;
        c->next_addr = NULL;
    }
    int64_t left_ns = c->deadline_ns - monotonic_ns();
    struct log_line l;
    if (left_ns <= 0) {
        log_line_begin(&l, LOG_ERROR, "connect", "fail");
        log_line_cstr(&l, "server_address", c->cfg->server_address);
        log_line_int(&l, "attempts", c->attempt);
        log_line_cstr(&l, "error", c->last_error);
        log_line_end(&l);
        c->done(c->ctx, NULL);
        return;
    }
    log_line_begin(&l, LOG_INFO, "connect", "in_progress");
    log_line_int(&l, "attempt", c->attempt);
    log_line_cstr(&l, "error", c->last_error);
    log_line_end(&l);

    int64_t delay_ns = c->delay_ms * NS_PER_MS;
    if (delay_ns > left_ns) {
        delay_ns = left_ns; /* one last try right at the deadline */
    }
    struct timeval tv = {
        .tv_sec = (time_t)(delay_ns / NS_PER_SEC),
        .tv_usec = (suseconds_t)(delay_ns % NS_PER_SEC / 1000),
    };
    c->delay_ms *= 2;
    if (c->delay_ms > CONNECT_BACKOFF_MAX_MS) {
        c->delay_ms = CONNECT_BACKOFF_MAX_MS;
    }
    if (evtimer_add(c->retry_timer, &tv) != 0) {
        set_error(c, "retry timer", "cannot schedule");
        c->deadline_ns = 0;
        attempt_failed(c);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt_start(arg);
}

static void connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct connector *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->bev = NULL;
        freeaddrinfo(c->addrs);
        c->addrs = NULL;
        c->next_addr = NULL;
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        struct log_line l;
        log_line_begin(&l, LOG_INFO, "connect", "success");
        log_line_cstr(&l, "server_address", c->cfg->server_address);
        log_line_end(&l);
        c->done(c->ctx, bev); /* last: done may free c */
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    set_error(c, "connect", err != 0 ? evutil_socket_error_to_string(err) : "failed");
    bufferevent_free(bev); /* safe in its own callback: libevent defers the free */
    c->bev = NULL;
    c->next_addr = c->next_addr->ai_next;
    try_next_address(c);
}

static void try_next_address(struct connector *c)
{
    while (c->next_addr != NULL) {
        struct addrinfo *ai = c->next_addr;
        c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->bev == NULL) {
            set_error(c, "socket", "cannot create a bufferevent");
            break;
        }
        bufferevent_setcb(c->bev, NULL, NULL, connect_event_cb, c);
        if (bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen) == 0) {
            return; /* connect_event_cb reports the outcome */
        }
        int err = EVUTIL_SOCKET_ERROR();
        set_error(c, "connect", err != 0 ? evutil_socket_error_to_string(err) : "failed");
        bufferevent_free(c->bev);
        c->bev = NULL;
        c->next_addr = ai->ai_next;
    }
    attempt_failed(c);
}

static void attempt_start(struct connector *c)
{
    c->attempt++;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* Blocking, once per attempt: the client has nothing else to do meanwhile. */
    int rc = getaddrinfo(c->cfg->server_host, c->cfg->server_port, &hints, &c->addrs);
    if (rc != 0) {
        c->addrs = NULL;
        set_error(c, "resolve", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        attempt_failed(c);
        return;
    }
    c->next_addr = c->addrs;
    try_next_address(c);
}

struct connector *connector_start(struct event_base *base, const struct client_config *cfg,
                                  connect_done_fn done, void *ctx)
{
    struct connector *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->cfg = cfg;
    c->done = done;
    c->ctx = ctx;
    c->delay_ms = CONNECT_BACKOFF_FIRST_MS;
    /* Saturated: connect.timeout may be up to Go's largest duration. */
    int64_t now = monotonic_ns();
    c->deadline_ns =
        cfg->connect_timeout_ns > INT64_MAX - now ? INT64_MAX : now + cfg->connect_timeout_ns;
    c->retry_timer = evtimer_new(base, retry_cb, c);
    if (c->retry_timer == NULL) {
        free(c);
        return NULL;
    }
    attempt_start(c);
    return c;
}

void connector_free(struct connector *c)
{
    if (c == NULL) {
        return;
    }
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
    }
    if (c->addrs != NULL) {
        freeaddrinfo(c->addrs);
    }
    event_free(c->retry_timer);
    free(c);
}

const char *bev_error_reason(short what)
{
    if (what & BEV_EVENT_EOF) {
        return "server closed the connection";
    }
    static char msg[160];
    int err = EVUTIL_SOCKET_ERROR();
    (void)snprintf(msg, sizeof(msg), "connection error: %s",
                   err != 0 ? evutil_socket_error_to_string(err) : "unknown");
    return msg;
}
