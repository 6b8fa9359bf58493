/*
 * Poll mode's bound on commands kept back while the device waits for DMA
 * replies: at most 64 MiB of received, unhandled commands in all, however
 * many DMA waits one callback makes. A client that sends 24 MiB of commands
 * before answering each of a callback's DMA_READs must be disconnected
 * during the third wait (72 MiB kept), not merely kept under 64 MiB per
 * wait while the server holds all of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"

#define BAR0_SIZE 0x1000
#define READY_MS 5000
/* Client memory shared without an fd: DMA goes through messages. */
#define MESSAGE_IOVA 0x400000
#define MESSAGE_SIZE 0x1000
/* DMA reads the callback makes, and commands sent before each answer. */
#define DMA_READS 3
#define FLOOD_MESSAGES 48
#define FLOOD_MESSAGE_BYTES (512 * 1024)

static struct {
    int region_calls;
    int lost_conn;
    int results[DMA_READS];
    int errnos[DMA_READS];
} seen;

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    seen.region_calls++;
    if (!is_write) {
        memset(buf, 0, count);
        return (ssize_t)count;
    }
    /* A device making several DMA reads from one register write. */
    dma_sg_t *sgl = calloc(1, dma_sg_size());
    CHECK(sgl != NULL);
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)MESSAGE_IOVA, 16, sgl, 1, PROT_READ) == 1);
    for (int i = 0; i < DMA_READS; ++i) {
        uint8_t data[16];
        errno = 0;
        seen.results[i] = vfu_sgl_read(ctx, sgl, 1, data);
        seen.errnos[i] = errno;
    }
    free(sgl);
    return (ssize_t)count;
}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    if (type == VFU_RESET_LOST_CONN) seen.lost_conn++;
    return 0;
}

/* Sends all of `len` bytes; 0, or -1 once the server is gone. */
static int send_all(int sock, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = send(sock, bytes, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Receives all of `len` bytes; 0, or -1 at end of stream or error. */
static int receive_all(int sock, void *out, size_t len) {
    uint8_t *p = out;
    while (len > 0) {
        ssize_t n = recv(sock, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * The hostile client's serving thread: answers every DMA_READ, but first
 * floods the server with REGION_WRITEs; ignores replies; stops sending once
 * it has answered DMA_READS of them; ends at end of stream.
 */
static void *serve_dma(void *arg) {
    int sock = *(int *)arg;
    static uint8_t flood[sizeof(struct vfio_user_header) + 16 + FLOOD_MESSAGE_BYTES];
    static uint8_t payload[64 * 1024];
    int answered = 0;
    for (;;) {
        struct vfio_user_header hdr;
        if (receive_all(sock, &hdr, sizeof(hdr)) != 0) break;
        CHECK(hdr.msg_size >= sizeof(hdr) && hdr.msg_size - sizeof(hdr) <= sizeof(payload));
        if (receive_all(sock, payload, hdr.msg_size - sizeof(hdr)) != 0) break;
        if (hdr.flags.type != VFIO_USER_MESSAGE_COMMAND || hdr.cmd != VFIO_USER_DMA_READ) continue;
        uint64_t addr, count;
        memcpy(&addr, payload, 8);
        memcpy(&count, payload + 8, 8);
        CHECK(count <= 64);
        bool gone = false;
        for (int i = 0; i < FLOOD_MESSAGES && !gone; ++i) {
            /* Past the BAR: each would fail once handled; here they are only kept. */
            uint32_t region = VFU_PCI_DEV_BAR0_REGION_IDX;
            uint64_t offset = 0x100000;
            uint32_t bytes = FLOOD_MESSAGE_BYTES;
            uint8_t head[16];
            memcpy(head, &offset, 8);
            memcpy(head + 8, &region, 4);
            memcpy(head + 12, &bytes, 4);
            memset(flood, 0, sizeof(flood));
            size_t n = raw_build(flood, (uint16_t)(100 + i), VFIO_USER_REGION_WRITE, head,
                                 sizeof(head));
            struct vfio_user_header *h = (struct vfio_user_header *)flood;
            h->msg_size = (uint32_t)(n + FLOOD_MESSAGE_BYTES);
            gone = send_all(sock, flood, n + FLOOD_MESSAGE_BYTES) != 0;
        }
        if (gone) break;
        uint8_t reply[sizeof(struct vfio_user_header) + 16 + 64];
        memset(reply, 0, sizeof(reply));
        struct vfio_user_header *r = (struct vfio_user_header *)reply;
        r->msg_id = hdr.msg_id;
        r->cmd = VFIO_USER_DMA_READ;
        r->msg_size = (uint32_t)(sizeof(*r) + 16 + count);
        r->flags.type = VFIO_USER_MESSAGE_REPLY;
        memcpy(reply + sizeof(*r), &addr, 8);
        memcpy(reply + sizeof(*r) + 8, &count, 8);
        if (send_all(sock, reply, r->msg_size) != 0) break;
        /* All answered: leave, reading what is left until the server closes. */
        if (++answered == DMA_READS) shutdown(sock, SHUT_WR);
    }
    return NULL;
}

int main(void) {
    static char dir[64] = "/tmp/vfu-kept-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/kept.sock", dir);
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL, VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    CHECK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) == 0);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                           VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(ctx, reset_cb) == 0);
    CHECK(vfu_setup_device_dma(ctx, NULL, NULL) == 0);
    CHECK(vfu_realize_ctx(ctx) == 0);

    int sock = raw_connect(path);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
    CHECK(vfu_attach_ctx(ctx) == 0);
    uint8_t msg[128];
    size_t n = raw_version(msg, 1);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
    CHECK(vfu_run_ctx(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t reply[4096];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error);
    /* Memory without an fd, then the write whose callback reads it. */
    raw_dma_map(sock, 2, MESSAGE_IOVA, MESSAGE_SIZE, -1);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
    CHECK(vfu_run_ctx(ctx) == 1);
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error && hdr.cmd == VFIO_USER_DMA_MAP);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, serve_dma, &sock) == 0);
    n = raw_region_write(msg, 3, VFU_PCI_DEV_BAR0_REGION_IDX, 0, "ring", 4);
    raw_send(sock, msg, n, NULL, 0);

    /* The event loop until the client is reported gone. */
    int rounds = 0;
    for (;;) {
        CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
        errno = 0;
        int r = vfu_run_ctx(ctx);
        if (r == -1 && errno == ENOTCONN) break;
        CHECK(r >= 0 || errno == EAGAIN);
        CHECK(seen.region_calls == 1);
        CHECK(++rounds < 1000);
    }
    CHECK(seen.region_calls == 1 && seen.lost_conn == 1);
    /* Two waits kept 48 MiB; the third passed the bound and failed. */
    CHECK(seen.results[0] == 0 && seen.results[1] == 0);
    if (seen.results[2] != -1) {
        fprintf(stderr, "the third DMA read succeeded with 72 MiB of commands kept back\n");
    }
    CHECK(seen.results[2] == -1 && seen.errnos[2] == ECONNRESET);
    pthread_join(thread, NULL);
    close(sock);
    vfu_destroy_ctx(ctx);
    rmdir(dir);
    printf("poll_kept_back_bound_test: passed\n");
    return 0;
}
