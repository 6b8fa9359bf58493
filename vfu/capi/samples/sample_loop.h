/*
 * The event loop the C samples share, as an event-loop user of the
 * libvfio-user API writes it: a non-blocking context, poll(2) on
 * vfu_get_poll_fd(), vfu_run_ctx() when it is readable, a new client after
 * ENOTCONN, and the device's own work (`idle`) between calls.
 */
#ifndef VFU_CAPI_SAMPLES_SAMPLE_LOOP_H
#define VFU_CAPI_SAMPLES_SAMPLE_LOOP_H

#include "libvfio-user.h"

/*
 * Serves `ctx` (realized, non-blocking) until a client has come and gone
 * `clients` times (0: forever). `idle` (may be NULL) runs after every
 * vfu_run_ctx() and returns whether it has more work right away. Returns 0,
 * or 1 on an unexpected error (reported on stderr).
 */
int sample_serve(vfu_ctx_t *ctx, int clients, int (*idle)(vfu_ctx_t *ctx));

/* Prints the library's log lines on stderr. */
void sample_log(vfu_ctx_t *ctx, int level, const char *msg);

#endif /* VFU_CAPI_SAMPLES_SAMPLE_LOOP_H */
