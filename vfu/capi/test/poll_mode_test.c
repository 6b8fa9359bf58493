/*
 * The libvfio-user API in poll mode, driven by a raw-socket client on the
 * same thread: each test controls exactly which bytes have arrived when
 * vfu_run_ctx() runs, and checks return values, errno, replies and the
 * arguments every callback received.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"

#define BAR0_SIZE 0x1000

/* What the callbacks saw. */
static struct {
    int region_calls;
    size_t last_count;
    loff_t last_offset;
    bool last_is_write;
    uint8_t bar0[BAR0_SIZE];
    int resets[3];
    int quiesce_calls;
    int quiesce_result; /* 0, or an errno to fail with */
    int registered;
    vfu_dma_info_t last_registered;
    int unregistered;
    vfu_dma_info_t last_unregistered;
    int irq_state_calls;
    uint32_t irq_state_start, irq_state_count;
    bool irq_state_mask;
} seen;

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    CHECK(vfu_get_private(ctx) == &seen);
    seen.region_calls++;
    seen.last_count = count;
    seen.last_offset = offset;
    seen.last_is_write = is_write;
    if (is_write) {
        memcpy(seen.bar0 + offset, buf, count);
    } else {
        memcpy(buf, seen.bar0 + offset, count);
    }
    return (ssize_t)count;
}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    CHECK(type >= 0 && type <= VFU_RESET_PCI_FLR);
    seen.resets[type]++;
    return 0;
}

static int quiesce_cb(vfu_ctx_t *ctx) {
    seen.quiesce_calls++;
    if (seen.quiesce_result != 0) {
        errno = seen.quiesce_result;
        return -1;
    }
    return 0;
}

static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    seen.registered++;
    seen.last_registered = *info;
}

static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    seen.unregistered++;
    seen.last_unregistered = *info;
}

static void irq_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask) {
    seen.irq_state_calls++;
    seen.irq_state_start = start;
    seen.irq_state_count = count;
    seen.irq_state_mask = mask;
}

static char socket_path[256];
static char socket_dir[64];

static vfu_ctx_t *make_ctx(void) {
    static int serial;
    /* Bazel's TEST_TMPDIR is too long for a socket path. */
    if (socket_dir[0] == 0) {
        strcpy(socket_dir, "/tmp/vfu-capi-XXXXXX");
        CHECK(mkdtemp(socket_dir) != NULL);
    }
    snprintf(socket_path, sizeof(socket_path), "%s/poll%d.sock", socket_dir, serial++);
    unlink(socket_path);
    memset(&seen, 0, sizeof(seen));
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, socket_path, LIBVFIO_USER_FLAG_ATTACH_NB,
                                    &seen, VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    CHECK(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) == 0);
    vfu_pci_set_id(ctx, 0x4e58, 0x0001, 0x1af4, 0x0002);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                           VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(ctx, reset_cb) == 0);
    vfu_setup_device_quiesce_cb(ctx, quiesce_cb);
    CHECK(vfu_setup_device_dma(ctx, dma_register, dma_unregister) == 0);
    CHECK(vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, 4) == 0);
    CHECK(vfu_setup_irq_state_callback(ctx, VFU_DEV_MSIX_IRQ, irq_state) == 0);
    struct pxcap px;
    memset(&px, 0, sizeof(px));
    px.hdr.id = PCI_CAP_ID_EXP;
    px.pxdcap.flrc = 1;
    CHECK(vfu_pci_add_capability(ctx, 0, 0, &px) == 0x40);
    CHECK(vfu_realize_ctx(ctx) == 0);
    return ctx;
}

/* Runs once and expects `want` (>= 0) or -1 with errno `want_errno`. */
static void expect_run(vfu_ctx_t *ctx, int want, int want_errno) {
    errno = 0;
    int r = vfu_run_ctx(ctx);
    if (want >= 0) {
        if (r != want) fprintf(stderr, "vfu_run_ctx: %d (errno %d), want %d\n", r, errno, want);
        CHECK(r == want);
    } else {
        if (r != -1 || errno != want_errno) {
            fprintf(stderr, "vfu_run_ctx: %d errno %d, want -1 errno %d\n", r, errno, want_errno);
        }
        CHECK(r == -1 && errno == want_errno);
    }
}

static void expect_reply(int sock, uint16_t msg_id, uint16_t cmd, uint32_t error_no) {
    struct vfio_user_header hdr;
    uint8_t payload[4096];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.flags.type == VFIO_USER_MESSAGE_REPLY);
    CHECK(hdr.msg_id == msg_id);
    CHECK(hdr.cmd == cmd);
    if (error_no == 0) {
        CHECK(!hdr.flags.error);
    } else {
        CHECK(hdr.flags.error && hdr.error_no == error_no);
    }
}

/* Attaches a raw client and negotiates; returns its socket. */
static int attach_client(vfu_ctx_t *ctx) {
    errno = 0;
    CHECK(vfu_attach_ctx(ctx) == -1 && errno == EAGAIN);
    int sock = raw_connect(socket_path);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    CHECK(vfu_attach_ctx(ctx) == 0);
    expect_run(ctx, -1, EAGAIN);
    uint8_t msg[64];
    size_t n = raw_version(msg, 1);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    expect_run(ctx, 1, 0);
    struct vfio_user_header hdr;
    uint8_t payload[4096];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.flags.type == VFIO_USER_MESSAGE_REPLY && !hdr.flags.error);
    CHECK(hdr.cmd == VFIO_USER_VERSION);
    return sock;
}

static void test_region_read_in_fragments(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    memcpy(seen.bar0 + 0x10, "\x11\x22\x33\x44", 4);
    uint8_t msg[64];
    size_t n = raw_region_read(msg, 7, VFU_PCI_DEV_BAR0_REGION_IDX, 0x10, 4);
    /* A header split in two, then the body: nothing runs until it is whole. */
    raw_send(sock, msg, 5, NULL, 0);
    expect_run(ctx, -1, EAGAIN);
    raw_send(sock, msg + 5, 14, NULL, 0);
    expect_run(ctx, -1, EAGAIN);
    CHECK(seen.region_calls == 0);
    raw_send(sock, msg + 19, n - 19, NULL, 0);
    expect_run(ctx, 1, 0);
    CHECK(seen.region_calls == 1);
    CHECK(seen.last_count == 4 && seen.last_offset == 0x10 && !seen.last_is_write);
    struct vfio_user_header hdr;
    uint8_t payload[64];
    size_t len = raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(!hdr.flags.error && hdr.msg_id == 7);
    CHECK(len == 20 && memcmp(payload + 16, "\x11\x22\x33\x44", 4) == 0);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_one_message_per_run_and_batches(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    uint8_t msg[128];
    size_t n = raw_region_write(msg, 8, VFU_PCI_DEV_BAR0_REGION_IDX, 0x20, "abcd", 4);
    raw_send(sock, msg, n, NULL, 0);
    expect_run(ctx, 1, 0);
    CHECK(seen.last_is_write && seen.last_offset == 0x20 && seen.last_count == 4);
    CHECK(memcmp(seen.bar0 + 0x20, "abcd", 4) == 0);
    expect_reply(sock, 8, VFIO_USER_REGION_WRITE, 0);
    /* Two whole messages and half of a third: two are handled. */
    uint8_t batch[256];
    size_t a = raw_region_read(batch, 9, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    size_t b = raw_region_read(batch + a, 10, VFU_PCI_DEV_BAR0_REGION_IDX, 4, 4);
    size_t c = raw_region_read(batch + a + b, 11, VFU_PCI_DEV_BAR0_REGION_IDX, 8, 4);
    raw_send(sock, batch, a + b + c / 2, NULL, 0);
    expect_run(ctx, 2, 0);
    expect_reply(sock, 9, VFIO_USER_REGION_READ, 0);
    expect_reply(sock, 10, VFIO_USER_REGION_READ, 0);
    raw_send(sock, batch + a + b + c / 2, c - c / 2, NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 11, VFIO_USER_REGION_READ, 0);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_config_space_and_flr(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    uint8_t msg[128];
    size_t n = raw_region_read(msg, 2, VFU_PCI_DEV_CFG_REGION_IDX, 0, 4);
    raw_send(sock, msg, n, NULL, 0);
    expect_run(ctx, 1, 0);
    struct vfio_user_header hdr;
    uint8_t payload[64];
    CHECK(raw_receive(sock, &hdr, payload, sizeof(payload)) == 20);
    uint32_t id;
    memcpy(&id, payload + 16, 4);
    CHECK(id == 0x00014e58);
    /* The device writes its config space directly; the client sees it. */
    vfu_pci_get_config_space(ctx)->hdr.intr.ipin = 1;
    n = raw_region_read(msg, 3, VFU_PCI_DEV_CFG_REGION_IDX, PCI_INTERRUPT_PIN, 1);
    raw_send(sock, msg, n, NULL, 0);
    expect_run(ctx, 1, 0);
    CHECK(raw_receive(sock, &hdr, payload, sizeof(payload)) == 17 && payload[16] == 1);
    /* Initiate FLR in the PCI Express capability's device control. */
    CHECK(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_EXP) == 0x40);
    uint16_t devctl = PCI_EXP_DEVCTL_BCR_FLR;
    n = raw_region_write(msg, 4, VFU_PCI_DEV_CFG_REGION_IDX, 0x40 + PCI_EXP_DEVCTL, &devctl, 2);
    raw_send(sock, msg, n, NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 4, VFIO_USER_REGION_WRITE, 0);
    CHECK(seen.resets[VFU_RESET_PCI_FLR] == 1 && seen.resets[VFU_RESET_DEVICE] == 0);
    /* DEVICE_RESET. */
    raw_command(sock, 5, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 5, VFIO_USER_DEVICE_RESET, 0);
    CHECK(seen.resets[VFU_RESET_DEVICE] == 1 && seen.quiesce_calls == 1);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_dma_map_sgl_and_quiesce(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    int fd = raw_guest_memfd(0x2000, 0x5a);
    raw_dma_map(sock, 20, 0x100000, 0x2000, fd);
    close(fd);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 20, VFIO_USER_DMA_MAP, 0);
    CHECK(seen.quiesce_calls == 1 && seen.registered == 1);
    CHECK(seen.last_registered.iova.iov_base == (void *)0x100000);
    CHECK(seen.last_registered.iova.iov_len == 0x2000);
    CHECK(seen.last_registered.vaddr != NULL);
    CHECK(seen.last_registered.prot == (PROT_READ | PROT_WRITE));
    CHECK(((uint8_t *)seen.last_registered.vaddr)[0] == 0x5a);

    CHECK(dma_sg_size() == 40);
    dma_sg_t *sgl = calloc(2, dma_sg_size());
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x100800, 0x100, sgl, 2, PROT_READ | PROT_WRITE) == 1);
    CHECK(vfu_sg_is_mappable(ctx, sgl));
    uint8_t data[0x100];
    CHECK(vfu_sgl_read(ctx, sgl, 1, data) == 0 && data[0] == 0x5a && data[0xff] == 0x5a);
    memset(data, 0xa5, sizeof(data));
    CHECK(vfu_sgl_write(ctx, sgl, 1, data) == 0);
    struct iovec iov;
    CHECK(vfu_sgl_get(ctx, sgl, &iov, 1, 0) == 0);
    CHECK(iov.iov_len == 0x100 && ((uint8_t *)iov.iov_base)[0] == 0xa5);
    vfu_sgl_put(ctx, sgl, &iov, 1);
    errno = 0;
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x200000, 0x10, sgl, 2, PROT_READ) == -1);
    CHECK(errno == ENOENT);
    /* Too small an array: -(needed + 1), errno 0. */
    errno = 0;
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x100000, 0x10, sgl, 0, PROT_READ) == -2);
    CHECK(errno == 0);

    /* A deferred quiesce holds the unmap: EBUSY until the device is done. */
    seen.quiesce_result = EBUSY;
    raw_dma_unmap(sock, 21, 0x100000, 0x2000);
    expect_run(ctx, -1, EBUSY);
    expect_run(ctx, -1, EBUSY);
    CHECK(seen.unregistered == 0);
    CHECK(!raw_readable(sock, 0));
    CHECK(vfu_device_quiesced(ctx, 0) == 0);
    CHECK(seen.unregistered == 1);
    CHECK(seen.last_unregistered.iova.iov_base == (void *)0x100000);
    CHECK(seen.last_unregistered.vaddr == seen.last_registered.vaddr);
    expect_reply(sock, 21, VFIO_USER_DMA_UNMAP, 0);
    expect_run(ctx, -1, EAGAIN);

    /* A failed deferred quiesce fails the command: the client gets a reply. */
    fd = raw_guest_memfd(0x1000, 0);
    raw_dma_map(sock, 22, 0x300000, 0x1000, fd);
    close(fd);
    expect_run(ctx, -1, EBUSY);
    CHECK(vfu_device_quiesced(ctx, EIO) == 0);
    expect_reply(sock, 22, VFIO_USER_DMA_MAP, EIO);
    CHECK(seen.registered == 1);
    /* A quiesce that fails at once fails the command too. */
    seen.quiesce_result = ENOMEM;
    raw_command(sock, 23, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 23, VFIO_USER_DEVICE_RESET, ENOMEM);
    CHECK(seen.resets[VFU_RESET_DEVICE] == 0);
    free(sgl);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_irqs(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(efd >= 0);
    uint32_t set[5] = {20, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                       VFU_DEV_MSIX_IRQ, 2, 1};
    raw_command(sock, 30, VFIO_USER_DEVICE_SET_IRQS, set, sizeof(set), &efd, 1);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 30, VFIO_USER_DEVICE_SET_IRQS, 0);
    CHECK(vfu_irq_trigger(ctx, 2) == 0);
    uint64_t count = 0;
    CHECK(read(efd, &count, sizeof(count)) == sizeof(count) && count == 1);
    errno = 0;
    CHECK(vfu_irq_trigger(ctx, 1) == -1 && errno == ENOENT);
    /* Masking vectors 2..2 reaches the state callback. */
    uint32_t mask[5] = {20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                        VFU_DEV_MSIX_IRQ, 2, 1};
    raw_command(sock, 31, VFIO_USER_DEVICE_SET_IRQS, mask, sizeof(mask), NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 31, VFIO_USER_DEVICE_SET_IRQS, 0);
    CHECK(seen.irq_state_calls == 1 && seen.irq_state_start == 2 && seen.irq_state_count == 1 &&
          seen.irq_state_mask);
    close(efd);
    close(sock);
    vfu_destroy_ctx(ctx);
}

/*
 * A client that shrinks the file behind its mapping fails the copy (no
 * SIGBUS) and is disconnected by the next vfu_run_ctx(), as the threaded
 * runtime does.
 */
static void test_shrunk_memory_fails_the_copy_and_disconnects(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    int fd = raw_guest_memfd(0x2000, 0x33);
    raw_dma_map(sock, 60, 0x300000, 0x2000, fd);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 60, VFIO_USER_DMA_MAP, 0);
    dma_sg_t *sgl = calloc(1, dma_sg_size());
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x301000, 0x100, sgl, 1, PROT_READ) == 1);
    uint8_t data[0x100];
    CHECK(vfu_sgl_read(ctx, sgl, 1, data) == 0 && data[0] == 0x33);
    CHECK(ftruncate(fd, 0) == 0);
    close(fd);
    const int resets_before = seen.resets[VFU_RESET_LOST_CONN];
    errno = 0;
    CHECK(vfu_sgl_read(ctx, sgl, 1, data) == -1 && errno == EIO);
    expect_run(ctx, -1, ENOTCONN);
    CHECK(seen.resets[VFU_RESET_LOST_CONN] == resets_before + 1);
    free(sgl);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_disconnect_and_reattach(void) {
    vfu_ctx_t *ctx = make_ctx();
    int listen_fd = vfu_get_poll_fd(ctx);
    int sock = attach_client(ctx);
    CHECK(vfu_get_poll_fd(ctx) != listen_fd);
    int fd = raw_guest_memfd(0x1000, 1);
    raw_dma_map(sock, 40, 0x1000, 0x1000, fd);
    close(fd);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 40, VFIO_USER_DMA_MAP, 0);
    close(sock);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    expect_run(ctx, -1, ENOTCONN);
    CHECK(seen.resets[VFU_RESET_LOST_CONN] == 1);
    CHECK(seen.unregistered == 1);
    CHECK(vfu_get_poll_fd(ctx) == listen_fd);
    expect_run(ctx, -1, ENOTCONN);
    sock = attach_client(ctx);
    close(sock);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    expect_run(ctx, -1, ENOTCONN);
    CHECK(seen.resets[VFU_RESET_LOST_CONN] == 2);
    vfu_destroy_ctx(ctx);
}

/*
 * A message over the size limit is refused with EINVAL; its body, though it
 * holds well-formed commands, is skipped rather than run.
 */
static void test_oversized_body_is_not_executed(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    size_t total = 4 << 20;
    uint8_t *big = calloc(1, total);
    CHECK(big != NULL);
    size_t n = raw_build(big, 50, VFIO_USER_REGION_WRITE, NULL, 0);
    struct vfio_user_header hdr;
    memcpy(&hdr, big, sizeof(hdr));
    hdr.msg_size = (uint32_t)total;
    memcpy(big, &hdr, sizeof(hdr));
    for (size_t at = n; at + 64 < total; at += 64) {
        raw_region_write(big + at, 51, VFU_PCI_DEV_BAR0_REGION_IDX, 0, "evil", 4);
    }
    /* The server reads as we send; send from here in slices. */
    size_t sent = 0;
    while (sent < total) {
        size_t chunk = total - sent < 65536 ? total - sent : 65536;
        raw_send(sock, big + sent, chunk, NULL, 0);
        sent += chunk;
        errno = 0;
        int r = vfu_run_ctx(ctx);
        CHECK(r >= 0 || errno == EAGAIN);
    }
    while (raw_readable(vfu_get_poll_fd(ctx), 100)) {
        int r = vfu_run_ctx(ctx);
        CHECK(r >= 0 || errno == EAGAIN);
    }
    expect_reply(sock, 50, VFIO_USER_REGION_WRITE, EINVAL);
    CHECK(seen.region_calls == 0);
    /* The stream is still in sync. */
    uint8_t msg[64];
    n = raw_region_read(msg, 52, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    raw_send(sock, msg, n, NULL, 0);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 52, VFIO_USER_REGION_READ, 0);
    free(big);
    close(sock);
    vfu_destroy_ctx(ctx);
}

/* The client side of the DMA_READ test, on its own thread. */
struct dma_client {
    int sock;
    uint8_t memory[64];
};

static void *serve_one_dma_read(void *arg) {
    struct dma_client *client = arg;
    struct vfio_user_header hdr;
    uint8_t payload[256];
    size_t len = raw_receive(client->sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.cmd == VFIO_USER_DMA_READ && hdr.flags.type == VFIO_USER_MESSAGE_COMMAND);
    CHECK(len == 16);
    uint64_t addr, count;
    memcpy(&addr, payload, 8);
    memcpy(&count, payload + 8, 8);
    CHECK(addr == 0x500010 && count == 8);
    /* A command overtakes the reply: the server must keep it for later. */
    uint8_t msg[64];
    size_t n = raw_region_read(msg, 61, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    raw_send(client->sock, msg, n, NULL, 0);
    uint8_t reply[16 + 8];
    memcpy(reply, payload, 16);
    memcpy(reply + 16, client->memory + 0x10, 8);
    struct vfio_user_header rh;
    memset(&rh, 0, sizeof(rh));
    rh.msg_id = hdr.msg_id;
    rh.cmd = VFIO_USER_DMA_READ;
    rh.msg_size = sizeof(rh) + sizeof(reply);
    rh.flags.type = VFIO_USER_MESSAGE_REPLY;
    uint8_t whole[sizeof(rh) + sizeof(reply)];
    memcpy(whole, &rh, sizeof(rh));
    memcpy(whole + sizeof(rh), reply, sizeof(reply));
    raw_send(client->sock, whole, sizeof(whole), NULL, 0);
    return NULL;
}

static void test_sgl_read_without_fd_keeps_commands(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = attach_client(ctx);
    raw_dma_map(sock, 60, 0x500000, 0x1000, -1);
    expect_run(ctx, 1, 0);
    expect_reply(sock, 60, VFIO_USER_DMA_MAP, 0);
    CHECK(seen.registered == 1 && seen.last_registered.vaddr == NULL);
    dma_sg_t *sg = calloc(1, dma_sg_size());
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)0x500010, 8, sg, 1, PROT_READ) == 1);
    CHECK(!vfu_sg_is_mappable(ctx, sg));
    struct dma_client client = {.sock = sock};
    for (int i = 0; i < 64; i++) client.memory[i] = (uint8_t)i;
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, serve_one_dma_read, &client) == 0);
    uint8_t out[8];
    CHECK(vfu_sgl_read(ctx, sg, 1, out) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(out[0] == 0x10 && out[7] == 0x17);
    /* The overtaking command is still to run, and the poll fd says so. */
    CHECK(seen.region_calls == 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 0));
    expect_run(ctx, 1, 0);
    CHECK(seen.region_calls == 1);
    expect_reply(sock, 61, VFIO_USER_REGION_READ, 0);
    CHECK(!raw_readable(vfu_get_poll_fd(ctx), 0));
    free(sg);
    close(sock);
    vfu_destroy_ctx(ctx);
}

static void test_setup_errors(void) {
    errno = 0;
    CHECK(vfu_create_ctx(VFU_TRANS_PIPE, "/tmp/x", 0, NULL, VFU_DEV_TYPE_PCI) == NULL);
    CHECK(errno == ENOTSUP);
    vfu_ctx_t *ctx = make_ctx();
    errno = 0;
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_NUM_REGIONS, 0x1000, NULL, VFU_REGION_FLAG_RW, NULL,
                           0, -1, 0) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_MSIX) == 0 && errno == ENOENT);
    CHECK(vfu_pci_find_capability(ctx, false, PCI_CAP_ID_EXP) == 0x40);
    CHECK(vfu_pci_find_next_capability(ctx, false, 0x40, PCI_CAP_ID_EXP) == 0);
    vfu_destroy_ctx(ctx);
}

int main(void) {
    test_setup_errors();
    test_region_read_in_fragments();
    test_one_message_per_run_and_batches();
    test_config_space_and_flr();
    test_dma_map_sgl_and_quiesce();
    test_irqs();
    test_disconnect_and_reattach();
    test_shrunk_memory_fails_the_copy_and_disconnects();
    test_oversized_body_is_not_executed();
    test_sgl_read_without_fd_keeps_commands();
    CHECK(rmdir(socket_dir) == 0);  /* every context removed its socket */
    printf("all poll-mode tests passed\n");
    return 0;
}
