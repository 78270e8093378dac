/*
 * The server glue: one event_base, the listener, signal events, the group
 * commit and log flush events, the raffle's fan-out, and the shutdown order
 * (connections, listener, signal events, storage, base).
 */
#ifndef TP0_SERVER_SERVER_H
#define TP0_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

#include "config.h"
#include "lottery.h"
#include "tp0/bet.h"
#include "tp0/buf.h"
#include "tp0/storage.h"

struct event_base;
struct event;
struct evconnlistener;
struct conn;

/* Event priorities (event_base_priority_init(base, 3)). */
#define PRIO_IO    1 /* listener, connections, timers, signals */
#define PRIO_IDLE  2 /* runs only when no I/O callback is pending */
#define PRIO_COUNT 3

struct server {
    const struct server_config *cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct event *commit_ev;        /* group commit: one fdatasync, then the held replies */
    struct event *flush_ev;         /* writes the log buffer out */
    struct event *accept_resume_ev; /* turns accepting back on after EMFILE & co. */
    struct event *reap_ev;          /* frees closing conns that have nothing left to write */
    const struct timeval *idle_tv;  /* common timeout for idle conns; NULL when off */

    struct storage storage;
    bool storage_open;
    struct lottery lottery;

    /* Scratch space reused by every handler (one thread, one handler at a time). */
    struct bet_batch batch;
    struct buf out;
    /* Log lines of stored batches, released by the commit with their replies. */
    struct buf staged_log;

    struct conn *conns; /* every live connection */
    size_t nconns;
    struct conn *pending;        /* connections with replies held until the commit */
    struct timeval commit_since; /* when the pending commit was first queued */
    bool commit_queued;
    bool commit_retrying;       /* a commit failed: only its 1 s retry timer tries again */
    struct timeval flush_since; /* when the log buffer became non-empty */
    bool flush_queued;
    bool raffle_due; /* the raffle waits for a storage commit that failed */
    bool stopping;
};

/* Sets everything up through the listener. Returns 0, or -1 after logging why
 * (whatever was set up is released by server_free). */
int server_init(struct server *s, const struct server_config *cfg);
/* Runs the loop until a signal stops it. */
int server_run(struct server *s);
/* Releases everything in the shutdown order, logging each resource. Safe after a
 * failed server_init. Returns 0, or -1 if the storage did not close cleanly. */
int server_free(struct server *s);

/* libevent's add/enable/disable calls fail only when the backend itself does
 * (epoll_ctl out of memory, say): the failure is logged and the loop goes on,
 * with the idle timeout as the backstop for a connection left without events. */
void server_check_ev(int rc, const char *what);

/* Asks for a group commit at the end of this loop iteration. */
void server_queue_commit(struct server *s);
/* Commits the storage now and releases every held reply and log line.
 * Returns 0, or -1 (replies stay held and a retry is scheduled). */
int server_commit(struct server *s);

/*
 * libevent runs a lower priority only in a loop iteration with no higher one
 * active, so a steady stream of reads could hold the commit and the log flush
 * back for ever. Read callbacks call this: it runs either inline once it has
 * waited more than a few milliseconds.
 */
void server_run_overdue(struct server *s);

/* Frees, from a callback of its own, every closing conn with nothing left to
 * write (those get no write callback to do it). */
void server_schedule_reap(struct server *s);

/* The last agency finished: commit, draw once, answer every parked conn. */
void server_raffle(struct server *s);

#endif
