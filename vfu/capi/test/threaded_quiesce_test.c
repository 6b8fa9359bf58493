/*
 * VFU_FLAG_THREADED and the device callbacks that bracket the engine's
 * work: the quiesce callback is asked (on a worker) before DMA_MAP,
 * DMA_UNMAP, DEVICE_RESET and when the client leaves; one that defers
 * (EBUSY) holds the command, and the client's later ones, until
 * vfu_device_quiesced() from the caller's thread, whose errno a failure
 * carries to the client; the DMA unregister callback runs while the range
 * is still mapped (before the engine unmaps it), as in libvfio-user.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"
#include "threaded_ctx.h"

#define IOVA 0x40000
#define SIZE 0x1000

/* What the quiesce callback does: answer 0, defer (EBUSY) or fail. */
static atomic_int quiesce_mode; /* 0, EBUSY, or an errno to fail with */
static atomic_int quiesce_calls, device_resets, unregistered, unregister_saw_mapped;

static int quiesce_cb(vfu_ctx_t *ctx) {
    atomic_fetch_add(&quiesce_calls, 1);
    int mode = atomic_load(&quiesce_mode);
    if (mode == 0) return 0;
    errno = mode;
    return -1;
}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    if (type == VFU_RESET_DEVICE) atomic_fetch_add(&device_resets, 1);
    return 0;
}

static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}

static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    /* The engine has not unmapped yet: the range still translates and its
     * memory is still there to read. */
    dma_sg_t *sg = calloc(1, dma_sg_size());
    CHECK(sg != NULL);
    bool translates =
        vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)IOVA, 16, sg, 1, PROT_READ) == 1;
    free(sg);
    bool readable = info->vaddr != NULL && ((volatile uint8_t *)info->vaddr)[0] == 0x6b;
    if (translates && readable) atomic_fetch_add(&unregister_saw_mapped, 1);
    atomic_fetch_add(&unregistered, 1);
}

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    if (!is_write) memset(buf, 0x3c, count);
    return (ssize_t)count;
}

/* Polls `counter` until it reaches `want` (5 s deadline). */
static void await_count(atomic_int *counter, int want) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (atomic_load(counter) < want) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        CHECK(now.tv_sec - start.tv_sec < 5);
        sched_yield();
    }
}

static void expect_reply(int sock, uint16_t msg_id, uint32_t error_no) {
    struct vfio_user_header hdr;
    uint8_t payload[256];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    if (hdr.msg_id != msg_id || hdr.error_no != error_no) {
        fprintf(stderr, "reply %u error %u, want %u error %u\n", hdr.msg_id, hdr.error_no,
                msg_id, error_no);
    }
    CHECK(hdr.msg_id == msg_id);
    CHECK(hdr.flags.type == VFIO_USER_MESSAGE_REPLY);
    CHECK(error_no == 0 ? !hdr.flags.error : (hdr.flags.error && hdr.error_no == error_no));
}

int main(void) {
    struct threaded_ctx t;
    threaded_ctx_create(&t, &(struct threaded_callbacks){.bar0 = bar0_access,
                                                         .reset = reset_cb,
                                                         .dma_register = dma_register,
                                                         .dma_unregister = dma_unregister,
                                                         .quiesce = quiesce_cb});
    vfu_ctx_t *ctx = t.ctx;
    int sock = threaded_ctx_attach_client(&t);
    uint8_t msg[64];

    /* A quiesce answered at once. */
    int fd = raw_guest_memfd(SIZE, 0x6b);
    raw_dma_map(sock, 2, IOVA, SIZE, fd);
    expect_reply(sock, 2, 0);
    CHECK(atomic_load(&quiesce_calls) == 1);

    /* Deferred: the unmap and the read behind it wait for the answer. */
    errno = 0;
    CHECK(vfu_device_quiesced(ctx, 0) == -1 && errno == EINVAL);
    atomic_store(&quiesce_mode, EBUSY);
    raw_dma_unmap(sock, 3, IOVA, SIZE);
    raw_send(sock, msg, raw_region_read(msg, 4, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4), NULL, 0);
    await_count(&quiesce_calls, 2);
    CHECK(!raw_readable(sock, 50));
    CHECK(atomic_load(&unregistered) == 0);
    atomic_store(&quiesce_mode, 0);
    CHECK(vfu_device_quiesced(ctx, 0) == 0);
    expect_reply(sock, 3, 0);
    expect_reply(sock, 4, 0);
    CHECK(atomic_load(&unregistered) == 1);
    CHECK(atomic_load(&unregister_saw_mapped) == 1);
    errno = 0;
    CHECK(vfu_device_quiesced(ctx, 0) == -1 && errno == EINVAL);

    /* A failing quiesce fails the command with its errno. */
    atomic_store(&quiesce_mode, EPERM);
    raw_dma_map(sock, 5, IOVA, SIZE, fd);
    expect_reply(sock, 5, EPERM);
    CHECK(atomic_load(&quiesce_calls) == 3);

    /* Deferred, then failed: the reset does not run, the client hears why. */
    atomic_store(&quiesce_mode, EBUSY);
    raw_command(sock, 6, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0);
    await_count(&quiesce_calls, 4);
    atomic_store(&quiesce_mode, 0);
    CHECK(vfu_device_quiesced(ctx, ENODEV) == 0);
    expect_reply(sock, 6, ENODEV);
    CHECK(atomic_load(&device_resets) == 0);

    /* Answered at once, the reset runs. */
    raw_command(sock, 7, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0);
    expect_reply(sock, 7, 0);
    CHECK(atomic_load(&device_resets) == 1 && atomic_load(&quiesce_calls) == 5);

    /* The client leaves: quiesced once more, as libvfio-user does. */
    close(sock);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 5000));
    errno = 0;
    CHECK(vfu_run_ctx(ctx) == -1 && errno == ENOTCONN);
    CHECK(atomic_load(&quiesce_calls) == 6);

    close(fd);
    threaded_ctx_destroy(&t);
    printf("threaded quiesce ok\n");
    return 0;
}
