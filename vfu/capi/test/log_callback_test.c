/*
 * vfu's own log lines for a context (the engine's, the driver's) reach the
 * context's vfu_setup_log() callback at the level the user asked, with
 * syslog levels, and never stderr; without a callback they go nowhere, as
 * in libvfio-user. A raw-socket client in the same thread drives a
 * non-blocking context.
 *
 * The engine's lines here are rate limited per call site; the contexts
 * run in an order where each expected line is its site's first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "raw_client.h"

#define MAX_LINES 64

static struct {
    int count;
    int levels[MAX_LINES];
    char text[MAX_LINES][512];
    vfu_ctx_t *ctx;
    int wrong_ctx;
} lines;

static void log_cb(vfu_ctx_t *ctx, int level, const char *msg) {
    if (ctx != lines.ctx) lines.wrong_ctx++;
    if (lines.count < MAX_LINES) {
        lines.levels[lines.count] = level;
        snprintf(lines.text[lines.count], sizeof(lines.text[0]), "%s", msg);
    }
    lines.count++;
}

/* The index of the first line containing `what`, or -1. */
static int find_line(const char *what) {
    for (int i = 0; i < lines.count && i < MAX_LINES; i++) {
        if (strstr(lines.text[i], what) != NULL) return i;
    }
    return -1;
}

static char socket_dir[64];

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    if (!is_write) memset(buf, 0, count);
    return (ssize_t)count;
}

/* A non-blocking context logging to log_cb at `level` (no callback when < 0). */
static vfu_ctx_t *make_ctx(const char *name, int level, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/%s.sock", socket_dir, name);
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                                    VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL);
    if (level >= 0) CHECK(vfu_setup_log(ctx, log_cb, level) == 0);
    CHECK(vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) == 0);
    CHECK(vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x1000, bar0_access,
                           VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) == 0);
    CHECK(vfu_realize_ctx(ctx) == 0);
    lines.ctx = ctx;
    return ctx;
}

/* Attaches a raw client, negotiates, and returns its socket. */
static int attach_and_negotiate(vfu_ctx_t *ctx, const char *path) {
    int sock = raw_connect(path);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    CHECK(vfu_attach_ctx(ctx) == 0);
    uint8_t msg[64];
    raw_send(sock, msg, raw_version(msg, 1), NULL, 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    CHECK(vfu_run_ctx(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t payload[4096];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.cmd == VFIO_USER_VERSION && !hdr.flags.error);
    return sock;
}

/* A REGION_READ of a region that does not exist: an error reply and a
 * warning from the engine. */
static void bad_region_read(vfu_ctx_t *ctx, int sock) {
    uint8_t msg[64];
    raw_send(sock, msg, raw_region_read(msg, 9, 200, 0, 4), NULL, 0);
    CHECK(raw_readable(vfu_get_poll_fd(ctx), 1000));
    CHECK(vfu_run_ctx(ctx) == 1);
    struct vfio_user_header hdr;
    uint8_t payload[64];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.msg_id == 9 && hdr.flags.error && hdr.error_no == EINVAL);
}

int main(void) {
    strcpy(socket_dir, "/tmp/vfu-capi-log-XXXXXX");
    CHECK(mkdtemp(socket_dir) != NULL);
    /* stderr goes to a file, which must stay empty. */
    char stderr_path[128];
    snprintf(stderr_path, sizeof(stderr_path), "%s/stderr", socket_dir);
    FILE *captured = fopen(stderr_path, "w+");
    CHECK(captured != NULL);
    int saved_stderr = dup(STDERR_FILENO);
    CHECK(saved_stderr >= 0);
    CHECK(dup2(fileno(captured), STDERR_FILENO) == STDERR_FILENO);
    char path[256];

    /* No callback: vfu's lines for the context go nowhere. */
    vfu_ctx_t *ctx = make_ctx("quiet", -1, path, sizeof(path));
    int sock = attach_and_negotiate(ctx, path);
    bad_region_read(ctx, sock);
    close(sock);
    vfu_destroy_ctx(ctx);
    CHECK(lines.count == 0);

    /* LOG_WARNING: the engine's warning arrives, its info lines do not. */
    ctx = make_ctx("warning", LOG_WARNING, path, sizeof(path));
    sock = attach_and_negotiate(ctx, path);
    CHECK(find_line("negotiated") < 0);
    bad_region_read(ctx, sock);
    int at = find_line("failed");
    CHECK(at >= 0);
    CHECK(lines.levels[at] == LOG_WARNING);
    CHECK(strstr(lines.text[at], "REGION_READ") != NULL);
    close(sock);
    vfu_destroy_ctx(ctx);
    for (int i = 0; i < lines.count && i < MAX_LINES; i++) CHECK(lines.levels[i] <= LOG_WARNING);

    /* LOG_INFO: the engine's info line about the negotiation arrives. */
    lines.count = 0;
    ctx = make_ctx("info", LOG_INFO, path, sizeof(path));
    sock = attach_and_negotiate(ctx, path);
    at = find_line("negotiated version");
    CHECK(at >= 0);
    CHECK(lines.levels[at] == LOG_INFO);
    close(sock);
    vfu_destroy_ctx(ctx);
    CHECK(lines.wrong_ctx == 0);

    fflush(stderr);
    long leaked = lseek(fileno(captured), 0, SEEK_END);
    dup2(saved_stderr, STDERR_FILENO);
    if (leaked != 0) {
        char text[1024] = {0};
        (void)!pread(fileno(captured), text, sizeof(text) - 1, 0);
        fprintf(stderr, "vfu wrote to stderr:\n%s\n", text);
    }
    CHECK(leaked == 0);
    fclose(captured);
    unlink(stderr_path);
    rmdir(socket_dir);
    printf("PASS\n");
    return 0;
}
