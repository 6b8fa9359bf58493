/*
 * A blocking context (no LIBVFIO_USER_FLAG_ATTACH_NB): vfu_attach_ctx()
 * waits for a client and vfu_run_ctx() serves it until it leaves, then
 * returns -1 with ENOTCONN after the LOST_CONN reset. The server runs on
 * its own thread; the raw client on the test's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"

static int reads, lost_conn_resets;
static int attach_result, run_result, run_errno;

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    if (!is_write) {
        memset(buf, 0xab, count);
        reads++;
    }
    return (ssize_t)count;
}

static int reset_cb(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    if (type == VFU_RESET_LOST_CONN) lost_conn_resets++;
    return 0;
}

static void *serve(void *arg) {
    vfu_ctx_t *ctx = arg;
    attach_result = vfu_attach_ctx(ctx);
    errno = 0;
    run_result = vfu_run_ctx(ctx);
    run_errno = errno;
    return NULL;
}

int main(void) {
    char dir[] = "/tmp/vfu-block-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/s", dir);
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, 0, NULL, VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x100, bar0_access,
                           VFU_REGION_FLAG_RW, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(ctx, reset_cb) == 0);
    CHECK(vfu_realize_ctx(ctx) == 0);
    pthread_t server;
    CHECK(pthread_create(&server, NULL, serve, ctx) == 0);

    int sock = raw_connect(path);
    uint8_t msg[64];
    size_t n = raw_version(msg, 1);
    /* Byte by byte: the blocking loop waits between pieces. */
    for (size_t i = 0; i < n; i++) raw_send(sock, msg + i, 1, NULL, 0);
    struct vfio_user_header hdr;
    uint8_t payload[4096];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.cmd == VFIO_USER_VERSION && !hdr.flags.error);
    for (uint16_t id = 2; id < 12; id++) {
        n = raw_region_read(msg, id, VFU_PCI_DEV_BAR0_REGION_IDX, 0x10, 4);
        raw_send(sock, msg, n, NULL, 0);
        CHECK(raw_receive(sock, &hdr, payload, sizeof(payload)) == 20);
        CHECK(hdr.msg_id == id && !hdr.flags.error && payload[16] == 0xab);
    }
    close(sock);
    CHECK(pthread_join(server, NULL) == 0);
    CHECK(attach_result == 0);
    CHECK(run_result == -1 && run_errno == ENOTCONN);
    CHECK(reads == 10 && lost_conn_resets == 1);
    vfu_destroy_ctx(ctx);
    CHECK(rmdir(dir) == 0);
    printf("blocking mode ok\n");
    return 0;
}
