/*
 * The client's connection to the server: connecting with retries and
 * exponential backoff, and cutting the input into frames.
 */
#ifndef TP0_CLIENT_NET_H
#define TP0_CLIENT_NET_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdint.h>

#include "config.h"
#include "tp0/protocol.h"

/* How a session (echo or agency) reports that it is over: the process's exit
 * code; the connection and files are already closed and logged. */
typedef void (*session_done_fn)(void *ctx, int exit_code);

/* First retry delay and its cap: 100 ms doubling up to 2 s. */
#define CONNECT_BACKOFF_FIRST_MS 100
#define CONNECT_BACKOFF_MAX_MS   2000

/*
 * Called once: with a connected bufferevent (the caller owns it from then on,
 * created with BEV_OPT_CLOSE_ON_FREE, callbacks unset and reading disabled) or
 * with NULL when connect.timeout passed (the fail line is already logged).
 */
typedef void (*connect_done_fn)(void *ctx, struct bufferevent *bev);

struct connector;

/* Starts connecting at once; logs `action: connect` lines as it goes. */
struct connector *connector_start(struct event_base *base, const struct client_config *cfg,
                                  connect_done_fn done, void *ctx);
/* Stops a pending attempt (closing its socket); fine after done was called. */
void connector_free(struct connector *c);

/* "server closed the connection" / "connection error: <strerror>" for an event
 * callback's flags. */
const char *bev_error_reason(short what);

#endif
