/*
 * Echo mode, the assignment's Part 1: loop.amount ECHO frames with body
 * "[CLIENT <id>] Message N°<i>", the first at once and then one every
 * loop.period after the previous echo; each echo must match what was sent.
 */
#ifndef TP0_CLIENT_ECHO_H
#define TP0_CLIENT_ECHO_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "net.h"

struct echo;

struct echo *echo_new(struct event_base *base, const struct client_config *cfg,
                      session_done_fn done, void *ctx);
/* Takes ownership of the connected bufferevent and sends the first message. */
void echo_start(struct echo *e, struct bufferevent *bev);
/* Stops at once (SIGTERM): closes the connection, logging it; done is not called. */
void echo_stop(struct echo *e);
void echo_free(struct echo *e);

#endif
