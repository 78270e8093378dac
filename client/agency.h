/*
 * Bets mode: the agency. Sends its dataset (or the one bet in the environment)
 * as NEW_BETS batches of at most batch.maxAmount bets and 8 KiB, keeping up to
 * batch.window of them unanswered, then FINISHED, then waits for WINNERS.
 *
 * Exit codes passed to done: 0 all sent and winners received; 1 the server
 * failed us (closed, BETS_RECV_FAIL, a bad frame) or reading the dataset failed;
 * 3 all done but some dataset rows were rejected.
 */
#ifndef TP0_CLIENT_AGENCY_H
#define TP0_CLIENT_AGENCY_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stddef.h>

#include "config.h"
#include "net.h"

#define AGENCY_EXIT_REJECTED_ROWS 3

struct agency;

/*
 * Picks the bets' source before any connection: the dataset file if it exists
 * (it must, when configured explicitly), else the environment bet (NOMBRE,
 * APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO). Returns NULL with a reason when
 * neither is usable (the caller exits 2).
 */
struct agency *agency_new(struct event_base *base, const struct client_config *cfg,
                          session_done_fn done, void *ctx, char *err, size_t errlen);
/* Takes ownership of the connected bufferevent and starts sending. */
void agency_start(struct agency *a, struct bufferevent *bev);
/* Stops at once (SIGTERM): nothing more is sent; the connection and the dataset
 * are closed, each logged; done is not called. */
void agency_stop(struct agency *a);
void agency_free(struct agency *a);

#endif
