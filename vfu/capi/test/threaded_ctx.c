#include "threaded_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raw_client.h"

void threaded_ctx_create(struct threaded_ctx *t, const struct threaded_callbacks *callbacks) {
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/vfu-capi-thr-XXXXXX");
    CHECK(mkdtemp(t->dir) != NULL);
    snprintf(t->path, sizeof(t->path), "%s/s", t->dir);
    t->ctx = vfu_create_ctx(VFU_TRANS_SOCK, t->path,
                            VFU_FLAG_THREADED | LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                            VFU_DEV_TYPE_PCI);
    CHECK(t->ctx != NULL);
    CHECK(vfu_setup_region(t->ctx, VFU_PCI_DEV_BAR0_REGION_IDX, THREADED_CTX_BAR0_SIZE,
                           callbacks->bar0, VFU_REGION_FLAG_RW, NULL, 0, -1, 0) == 0);
    CHECK(vfu_setup_device_reset_cb(t->ctx, callbacks->reset) == 0);
    CHECK(vfu_setup_device_dma(t->ctx, callbacks->dma_register, callbacks->dma_unregister) == 0);
    if (callbacks->quiesce != NULL) vfu_setup_device_quiesce_cb(t->ctx, callbacks->quiesce);
    CHECK(vfu_realize_ctx(t->ctx) == 0);
}

int threaded_ctx_attach_client(struct threaded_ctx *t) {
    int sock = raw_connect(t->path);
    uint8_t msg[64];
    raw_send(sock, msg, raw_version(msg, 1), NULL, 0);
    struct vfio_user_header hdr;
    uint8_t payload[4096];
    raw_receive(sock, &hdr, payload, sizeof(payload));
    CHECK(hdr.msg_id == 1 && hdr.cmd == VFIO_USER_VERSION && !hdr.flags.error);
    CHECK(raw_readable(vfu_get_poll_fd(t->ctx), 5000));
    CHECK(vfu_attach_ctx(t->ctx) == 0);
    return sock;
}

void threaded_ctx_destroy(struct threaded_ctx *t) {
    vfu_destroy_ctx(t->ctx);
    t->ctx = NULL;
    CHECK(rmdir(t->dir) == 0);
}
