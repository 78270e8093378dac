/*
 * One client connection: owns one bufferevent (BEV_OPT_CLOSE_ON_FREE), reads
 * whole frames and dispatches them, and holds replies that must wait for the
 * storage commit. conn_free() is the only place a connection dies.
 */
#ifndef TP0_SERVER_CONN_H
#define TP0_SERVER_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tp0/util.h"

struct server;
struct bufferevent;
struct evbuffer;
struct event;

/* conn.flags */
#define CONN_CLOSING   0x01u /* last reply queued: no more reading; freed once flushed */
#define CONN_PARKED    0x02u /* sent FINISHED and waits for the raffle; no idle timeout */
#define CONN_PENDING   0x04u /* has replies in `held` waiting for the storage commit */
#define CONN_THROTTLED 0x08u /* output above the high watermark: reading paused */

struct conn {
    struct server *srv;
    struct bufferevent *bev; /* owns the socket */
    struct event *idle_ev;   /* fires when no whole frame arrived for IDLE_TIMEOUT */
    struct evbuffer *held;   /* replies behind a storage commit (NULL until needed) */
    unsigned flags;
    int32_t agency; /* agency of the FINISHED this conn is parked for, else 0 */
    char ip[INET6_ADDRSTRLEN];
    struct conn *prev, *next;                 /* server->conns */
    struct conn *pending_prev, *pending_next; /* server->pending */
};

/* Takes ownership of fd (closed on failure). Returns NULL after logging why. */
struct conn *conn_new(struct server *s, int fd, const struct sockaddr *addr);

/* Closes the socket and releases everything, leaving every list it is in. */
void conn_free(struct conn *c);

/* Queues a reply: held behind the pending commit if the conn has one, so the
 * order of answers is the order of requests; else written at once. */
void conn_send(struct conn *c, const void *data, size_t len);

/* Queues a BETS_RECV_SUCCESS that waits for the next storage commit. */
void conn_hold_ack(struct conn *c);

/* The commit made the held replies durable-safe: moves them to the output. */
void conn_release_held(struct conn *c);

/* Stops reading and frees the conn once its output (and held replies) are
 * flushed. Never frees it synchronously: the caller may still touch it. */
void conn_close_after_flush(struct conn *c);

/* Frees the conn now if it is closing and has nothing left to write.
 * Returns true if it was freed. */
bool conn_reap(struct conn *c);

/* Sends the WINNERS frame of its agency and closes after flushing. */
void conn_send_winners(struct conn *c, int32_t agency);

#endif
