/*
 * Poll mode's promise to an event loop: once the library has decided to
 * drop a client, vfu_get_poll_fd() turns readable on its own, so a loop
 * that calls vfu_run_ctx() only when it is (as SPDK's does) learns of the
 * departure (-1/ENOTCONN) without the client sending anything more:
 *   - after the error reply to a first command that is not a good VERSION
 *     (the connection must end once that reply is out, PROTOCOL.md 3.2);
 *   - after a broken stream that followed commands in the same read;
 *   - after a copy from memory the client took away (a file shrunk under
 *     its mapping), whether the copy ran inside vfu_run_ctx() (a region
 *     callback) or outside it;
 * and a blocking context's vfu_run_ctx(), waiting for the client, returns
 * ENOTCONN when another thread's copy finds the client's memory gone.
 * Each case also checks the client sees its connection end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"

#define BAR0_SIZE 0x1000
/* Bound of every wait for readiness; generous for sanitizer builds. */
#define READY_MS 5000

/* The IOVA range the client maps from a memfd. */
#define MAPPED_IOVA 0x300000
#define MAPPED_SIZE 0x2000

static struct {
    int lost_conn;
    int region_calls;
    /* The BAR0 callback's DMA: whether it copies, and what came of it. */
    bool copy_in_callback;
    int copy_result;
    int copy_errno;
} seen;

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    seen.region_calls++;
    memset(buf, 0, is_write ? 0 : count);
    if (seen.copy_in_callback) {
        /* A device copying client memory from its region callback. */
        dma_sg_t *sgl = calloc(1, dma_sg_size());
        CHECK(sgl != NULL);
        uint8_t data[0x100];
        errno = 0;
        seen.copy_result = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(MAPPED_IOVA + 0x1000),
                                           sizeof(data), sgl, 1, PROT_READ);
        if (seen.copy_result == 1) seen.copy_result = vfu_sgl_read(ctx, sgl, 1, data);
        seen.copy_errno = errno;
        free(sgl);
    }
    return (ssize_t)count;
}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    if (type == VFU_RESET_LOST_CONN) seen.lost_conn++;
    return 0;
}

static char socket_path[256];

static vfu_ctx_t *make_ctx_with_flags(int flags) {
    static char dir[64];
    static int serial;
    /* Bazel's TEST_TMPDIR is too long for a socket path. */
    if (dir[0] == 0) {
        strcpy(dir, "/tmp/vfu-ready-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    snprintf(socket_path, sizeof(socket_path), "%s/ready%d.sock", dir, serial++);
    unlink(socket_path);
    memset(&seen, 0, sizeof(seen));
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, socket_path, flags, NULL, VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    CHECK(vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) == 0);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR0_SIZE, bar0_access,
                           VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(ctx, reset_cb) == 0);
    CHECK(vfu_setup_device_dma(ctx, NULL, NULL) == 0);
    CHECK(vfu_realize_ctx(ctx) == 0);
    return ctx;
}

static vfu_ctx_t *make_ctx(void) { return make_ctx_with_flags(LIBVFIO_USER_FLAG_ATTACH_NB); }

/* A raw client, attached; not negotiated. */
static int connect_client(vfu_ctx_t *ctx) {
    int sock = raw_connect(socket_path);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
    CHECK(vfu_attach_ctx(ctx) == 0);
    return sock;
}

/* One round of an event loop: waits for the poll fd, then runs. */
static int loop_round(vfu_ctx_t *ctx) {
    CHECK(raw_readable(vfu_get_poll_fd(ctx), READY_MS));
    errno = 0;
    return vfu_run_ctx(ctx);
}

static void expect_error_reply(int sock, uint16_t msg_id, uint32_t error_no) {
    struct vfio_user_header hdr;
    uint8_t payload[256];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.flags.type == VFIO_USER_MESSAGE_REPLY && hdr.msg_id == msg_id);
    CHECK(hdr.flags.error && hdr.error_no == error_no);
}

/*
 * Runs the loop until the library reports the client gone (each round
 * only when the poll fd is readable); then the client's socket must read
 * end of file, and the context must take the next client.
 */
static void expect_departure(vfu_ctx_t *ctx, int sock) {
    int rounds = 0;
    for (;;) {
        int r = loop_round(ctx);
        if (r == -1 && errno == ENOTCONN) break;
        CHECK(r >= 0 || errno == EAGAIN);
        CHECK(++rounds < 100);
    }
    CHECK(seen.lost_conn == 1);
    CHECK(raw_readable(sock, READY_MS));
    uint8_t byte;
    CHECK(recv(sock, &byte, 1, MSG_DONTWAIT) == 0);
    close(sock);
    /* The listening socket is the poll fd again and serves the next one. */
    int next = connect_client(ctx);
    close(next);
}

static void test_first_command_not_version_ends_the_connection(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = connect_client(ctx);
    uint8_t msg[64];
    size_t n = raw_region_read(msg, 3, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(loop_round(ctx) == 1);
    CHECK(seen.region_calls == 0);
    expect_error_reply(sock, 3, EINVAL);
    /* The client now waits for the close, sending nothing. */
    expect_departure(ctx, sock);
    vfu_destroy_ctx(ctx);
}

static void test_failed_version_ends_the_connection(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = connect_client(ctx);
    uint8_t payload[7];
    const uint16_t major = 7, minor = 0; /* a major version nobody speaks */
    memcpy(payload, &major, 2);
    memcpy(payload + 2, &minor, 2);
    memcpy(payload + 4, "{}", 3);
    raw_command(sock, 1, VFIO_USER_VERSION, payload, sizeof(payload), NULL, 0);
    CHECK(loop_round(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t reply[256];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(hdr.msg_id == 1 && hdr.flags.error);
    expect_departure(ctx, sock);
    vfu_destroy_ctx(ctx);
}

/* Negotiates, then maps MAPPED_SIZE bytes of a memfd at MAPPED_IOVA. */
static int negotiate_and_map(vfu_ctx_t *ctx, int sock) {
    uint8_t msg[64];
    size_t n = raw_version(msg, 1);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(loop_round(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t reply[4096];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error && hdr.cmd == VFIO_USER_VERSION);
    int fd = raw_guest_memfd(MAPPED_SIZE, 0);
    raw_dma_map(sock, 2, MAPPED_IOVA, MAPPED_SIZE, fd);
    CHECK(loop_round(ctx) == 1);
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error && hdr.cmd == VFIO_USER_DMA_MAP);
    return fd;
}

static void test_broken_stream_after_a_command_ends_the_connection(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = connect_client(ctx);
    uint8_t msg[64];
    size_t n = raw_version(msg, 1);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(loop_round(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t reply[4096];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error);
    /* A good command, then a header announcing fewer bytes than itself,
     * in one send: the command is handled, the stream is broken. */
    uint8_t bytes[128];
    size_t good = raw_region_read(bytes, 2, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    size_t bad = raw_region_read(bytes + good, 3, VFU_PCI_DEV_BAR0_REGION_IDX, 0, 4);
    const uint32_t too_small = 4;
    memcpy(bytes + good + offsetof(struct vfio_user_header, msg_size), &too_small, 4);
    raw_send(sock, bytes, good + bad, NULL, 0);
    CHECK(loop_round(ctx) == 1);
    /* (Its reply is not sent: the connection is dropped first.) */
    expect_departure(ctx, sock);
    vfu_destroy_ctx(ctx);
}

/* A client attached to `ctx` that mapped memory and then took it away
 * (truncated its memfd): the next copy from it faults. Its socket. */
static int client_that_took_its_memory_away(vfu_ctx_t *ctx) {
    int sock = connect_client(ctx);
    int fd = negotiate_and_map(ctx, sock);
    CHECK(ftruncate(fd, 0) == 0);
    close(fd);
    return sock;
}

static void test_copy_fault_in_a_callback_ends_the_connection(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = client_that_took_its_memory_away(ctx);
    /* The region write's callback copies from the lost pages. */
    seen.copy_in_callback = true;
    uint8_t msg[64];
    size_t n = raw_region_write(msg, 3, VFU_PCI_DEV_BAR0_REGION_IDX, 0, "ring", 4);
    raw_send(sock, msg, n, NULL, 0);
    CHECK(loop_round(ctx) == 1);
    CHECK(seen.region_calls == 1 && seen.copy_result == -1 && seen.copy_errno == EIO);
    /* The write itself succeeded; the client then sends nothing more. */
    struct vfio_user_header hdr;
    uint8_t reply[64];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(hdr.msg_id == 3 && !hdr.flags.error);
    expect_departure(ctx, sock);
    vfu_destroy_ctx(ctx);
}

static void test_copy_fault_between_runs_ends_the_connection(void) {
    vfu_ctx_t *ctx = make_ctx();
    int sock = client_that_took_its_memory_away(ctx);
    /* The device's own work between vfu_run_ctx() calls copies. */
    dma_sg_t *sgl = calloc(1, dma_sg_size());
    CHECK(vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)MAPPED_IOVA, 0x100, sgl, 1, PROT_READ) == 1);
    uint8_t data[0x100];
    errno = 0;
    CHECK(vfu_sgl_read(ctx, sgl, 1, data) == -1 && errno == EIO);
    free(sgl);
    expect_departure(ctx, sock);
    vfu_destroy_ctx(ctx);
}

/* A blocking context's serving thread: attach, then serve until it ends. */
static struct {
    vfu_ctx_t *ctx;
    int result;
    int error;
} blocking;

static void *serve_blocking(void *arg) {
    (void)arg;
    CHECK(vfu_attach_ctx(blocking.ctx) == 0);
    errno = 0;
    blocking.result = vfu_run_ctx(blocking.ctx);
    blocking.error = errno;
    return NULL;
}

/* Negotiates and maps over `sock` while another thread serves. */
static int negotiate_and_map_served(int sock) {
    uint8_t msg[64];
    size_t n = raw_version(msg, 1);
    raw_send(sock, msg, n, NULL, 0);
    struct vfio_user_header hdr;
    uint8_t reply[4096];
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error && hdr.cmd == VFIO_USER_VERSION);
    int fd = raw_guest_memfd(MAPPED_SIZE, 0);
    raw_dma_map(sock, 2, MAPPED_IOVA, MAPPED_SIZE, fd);
    raw_receive(sock, &hdr, reply, sizeof(reply));
    CHECK(!hdr.flags.error && hdr.cmd == VFIO_USER_DMA_MAP);
    return fd;
}

static void test_blocking_run_ends_on_another_threads_copy_fault(void) {
    blocking.ctx = make_ctx_with_flags(0);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, serve_blocking, NULL) == 0);
    int sock = raw_connect(socket_path);
    int fd = negotiate_and_map_served(sock);
    /* A device thread copies while the serving thread waits for the client. */
    dma_sg_t *sgl = calloc(1, dma_sg_size());
    CHECK(vfu_addr_to_sgl(blocking.ctx, (vfu_dma_addr_t)MAPPED_IOVA, 0x100, sgl, 1, PROT_READ) ==
          1);
    CHECK(ftruncate(fd, 0) == 0);
    close(fd);
    uint8_t data[0x100];
    errno = 0;
    CHECK(vfu_sgl_read(blocking.ctx, sgl, 1, data) == -1 && errno == EIO);
    free(sgl);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += READY_MS / 1000;
    CHECK(pthread_timedjoin_np(thread, NULL, &deadline) == 0);
    CHECK(blocking.result == -1 && blocking.error == ENOTCONN);
    CHECK(seen.lost_conn == 1);
    close(sock);
    vfu_destroy_ctx(blocking.ctx);
}

static const struct {
    const char *name;
    void (*run)(void);
} tests[] = {
    {"first_command_not_version", test_first_command_not_version_ends_the_connection},
    {"failed_version", test_failed_version_ends_the_connection},
    {"broken_stream", test_broken_stream_after_a_command_ends_the_connection},
    {"copy_fault_in_a_callback", test_copy_fault_in_a_callback_ends_the_connection},
    {"copy_fault_between_runs", test_copy_fault_between_runs_ends_the_connection},
    {"blocking_copy_fault", test_blocking_run_ends_on_another_threads_copy_fault},
};

/* Runs every test, or the one named by the argument. */
int main(int argc, char **argv) {
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); ++i) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
        printf("poll_readiness_test: %s\n", tests[i].name);
        fflush(stdout);
        tests[i].run();
    }
    printf("poll_readiness_test: passed\n");
    return 0;
}
