#include "sample_loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

void sample_log(vfu_ctx_t *ctx, int level, const char *msg) {
    fprintf(stderr, "vfio-user[%d]: %s\n", level, msg);
}

int sample_serve(vfu_ctx_t *ctx, int clients, int (*idle)(vfu_ctx_t *ctx)) {
    int served = 0;
    int more_work = 0;
    for (;;) {
        /* Wait for a client (the poll fd is the listening socket now). */
        while (vfu_attach_ctx(ctx) != 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                fprintf(stderr, "vfu_attach_ctx: %s\n", strerror(errno));
                return 1;
            }
            struct pollfd p = {.fd = vfu_get_poll_fd(ctx), .events = POLLIN};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                return 1;
            }
        }
        for (;;) {
            struct pollfd p = {.fd = vfu_get_poll_fd(ctx), .events = POLLIN};
            if (poll(&p, 1, more_work ? 0 : -1) < 0 && errno != EINTR) {
                return 1;
            }
            int r = vfu_run_ctx(ctx);
            if (r < 0 && errno == ENOTCONN) {
                break;
            }
            if (r < 0 && errno != EAGAIN && errno != EBUSY) {
                fprintf(stderr, "vfu_run_ctx: %s\n", strerror(errno));
                return 1;
            }
            more_work = idle != NULL && idle(ctx);
        }
        if (clients != 0 && ++served == clients) {
            return 0;
        }
    }
}
