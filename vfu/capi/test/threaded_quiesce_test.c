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

static void send_dma_map(int sock, uint16_t id, int fd) {
    uint8_t map[32];
    uint32_t argsz = 32, flags = 3;
    uint64_t offset = 0, iova = IOVA, size = SIZE;
    memcpy(map, &argsz, 4);
    memcpy(map + 4, &flags, 4);
    memcpy(map + 8, &offset, 8);
    memcpy(map + 16, &iova, 8);
    memcpy(map + 24, &size, 8);
    raw_command(sock, id, VFIO_USER_DMA_MAP, map, sizeof(map), &fd, 1);
}

static void send_dma_unmap(int sock, uint16_t id) {
    uint8_t unmap[24];
    uint32_t argsz = 24, flags = 0;
    uint64_t iova = IOVA, size = SIZE;
    memcpy(unmap, &argsz, 4);
    memcpy(unmap + 4, &flags, 4);
    memcpy(unmap + 8, &iova, 8);
    memcpy(unmap + 16, &size, 8);
    raw_command(sock, id, VFIO_USER_DMA_UNMAP, unmap, sizeof(unmap), NULL, 0);
}

int main(void) {
    char dir[] = "/tmp/vfu-thrq-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/s", dir);
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path,
                                    VFU_FLAG_THREADED | LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                                    VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x100, bar0_access,
                           VFU_REGION_FLAG_RW, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(ctx, reset_cb) == 0);
    CHECK(vfu_setup_device_dma(ctx, dma_register, dma_unregister) == 0);
    vfu_setup_device_quiesce_cb(ctx, quiesce_cb);
    CHECK(vfu_realize_ctx(ctx) == 0);

    int sock = raw_connect(path);
    uint8_t msg[64];
    raw_send(sock, msg, raw_version(msg, 1), NULL, 0);
    expect_reply(sock, 1, 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 5000));
    CHECK(vfu_attach_ctx(ctx) == 0);

    /* A quiesce answered at once. */
    int fd = memfd_create("guest", MFD_CLOEXEC);
    CHECK(fd >= 0 && ftruncate(fd, SIZE) == 0);
    uint8_t *guest = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(guest != MAP_FAILED);
    memset(guest, 0x6b, SIZE);
    send_dma_map(sock, 2, fd);
    expect_reply(sock, 2, 0);
    CHECK(atomic_load(&quiesce_calls) == 1);

    /* Deferred: the unmap and the read behind it wait for the answer. */
    errno = 0;
    CHECK(vfu_device_quiesced(ctx, 0) == -1 && errno == EINVAL);
    atomic_store(&quiesce_mode, EBUSY);
    send_dma_unmap(sock, 3);
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
    send_dma_map(sock, 5, fd);
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

    munmap(guest, SIZE);
    close(fd);
    vfu_destroy_ctx(ctx);
    CHECK(rmdir(dir) == 0);
    printf("threaded quiesce ok\n");
    return 0;
}
