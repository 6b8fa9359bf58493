/*
 * VFU_FLAG_THREADED: vfu's IO thread and workers serve the context; the
 * callbacks run on workers; the caller's thread learns of the client's
 * arrival (vfu_attach_ctx) and departure (vfu_run_ctx: ENOTCONN), with the
 * poll fd readable while either waits to be reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"
#include "threaded_ctx.h"

static pthread_t main_thread;
static atomic_int region_calls, calls_off_main, registered, lost_conn_resets;
static _Atomic(void *) registered_vaddr;

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    atomic_fetch_add(&region_calls, 1);
    if (!pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&calls_off_main, 1);
    if (!is_write) memset(buf, 0x3c, count);
    return (ssize_t)count;
}

static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    atomic_store(&registered_vaddr, info->vaddr);
    atomic_fetch_add(&registered, 1);
}

static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    if (type == VFU_RESET_LOST_CONN) atomic_fetch_add(&lost_conn_resets, 1);
    return 0;
}

int main(void) {
    main_thread = pthread_self();
    struct threaded_ctx t;
    threaded_ctx_create(&t, &(struct threaded_callbacks){.bar0 = bar0_access,
                                                         .reset = reset_cb,
                                                         .dma_register = dma_register,
                                                         .dma_unregister = dma_unregister});
    vfu_ctx_t *ctx = t.ctx;
    errno = 0;
    CHECK(vfu_attach_ctx(ctx) == -1 && errno == EAGAIN);
    errno = 0;
    CHECK(vfu_run_ctx(ctx) == -1 && errno == ENOTCONN);
    CHECK(!raw_readable(vfu_get_poll_fd(ctx), 0));

    for (int round = 0; round < 2; round++) {
        int sock = threaded_ctx_attach_client(&t);
        CHECK(!raw_readable(vfu_get_poll_fd(ctx), 0));
        CHECK(vfu_run_ctx(ctx) == 0);

        uint8_t msg[64];
        struct vfio_user_header hdr;
        uint8_t payload[4096];
        raw_send(sock, msg, raw_region_read(msg, 2, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4), NULL, 0);
        CHECK(raw_receive(sock, &hdr, payload, sizeof(payload)) == 20);
        CHECK(!hdr.flags.error && payload[16] == 0x3c);

        /* Memory shared with an fd, read from this thread through the C API. */
        int fd = raw_guest_memfd(0x1000, 0x77);
        raw_dma_map(sock, 3, 0x10000, 0x1000, fd);
        raw_receive(sock, &hdr, payload, sizeof(payload));
        CHECK(hdr.msg_id == 3 && !hdr.flags.error);
        close(fd);
        CHECK(atomic_load(&registered) == round + 1 && atomic_load(&registered_vaddr) != NULL);
        dma_sg_t *sg = calloc(1, dma_sg_size());
        CHECK(sg != NULL);
        CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x10010, 16, sg, 1, PROT_READ) == 1);
        uint8_t out[16];
        CHECK(vfu_sgl_read(ctx, sg, 1, out) == 0 && out[0] == 0x77 && out[15] == 0x77);
        free(sg);

        close(sock);
        CHECK(raw_readable(vfu_get_poll_fd(ctx), 5000));
        errno = 0;
        CHECK(vfu_run_ctx(ctx) == -1 && errno == ENOTCONN);
        CHECK(atomic_load(&lost_conn_resets) == round + 1);
        errno = 0;
        CHECK(vfu_run_ctx(ctx) == -1 && errno == ENOTCONN);
        /* The client's memory went with it. */
        sg = calloc(1, dma_sg_size());
        CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x10010, 16, sg, 1, PROT_READ) == -1);
        free(sg);
    }
    CHECK(atomic_load(&region_calls) == 2 && atomic_load(&calls_off_main) == 2);
    threaded_ctx_destroy(&t);
    printf("threaded mode ok\n");
    return 0;
}
