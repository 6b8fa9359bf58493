/*
 * What the threaded-mode C tests share: a VFU_FLAG_THREADED |
 * LIBVFIO_USER_FLAG_ATTACH_NB context on a socket in a fresh directory
 * under /tmp (Bazel's TEST_TMPDIR is too long for a socket path), with a
 * read-write BAR0 of THREADED_CTX_BAR0_SIZE bytes and the test's callbacks,
 * realized; and a raw client attached to it.
 *
 *   struct threaded_ctx t;
 *   threaded_ctx_create(&t, &(struct threaded_callbacks){.bar0 = ..., ...});
 *   int sock = threaded_ctx_attach_client(&t);
 *   ...
 *   close(sock);
 *   threaded_ctx_destroy(&t);
 *
 * Every step CHECKs: a failure ends the test.
 */
#ifndef VFU_CAPI_TEST_THREADED_CTX_H
#define VFU_CAPI_TEST_THREADED_CTX_H

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THREADED_CTX_BAR0_SIZE 0x100

struct threaded_callbacks {
    vfu_region_access_cb_t *bar0;
    vfu_reset_cb_t *reset;
    vfu_dma_register_cb_t *dma_register;
    vfu_dma_unregister_cb_t *dma_unregister;
    vfu_device_quiesce_cb_t *quiesce; /* NULL: none set */
};

struct threaded_ctx {
    char dir[32];
    char path[64];
    vfu_ctx_t *ctx;
};

/* Creates and realizes the context at a fresh t->path. */
void threaded_ctx_create(struct threaded_ctx *t, const struct threaded_callbacks *callbacks);

/*
 * Connects a raw client, negotiates VERSION (message ID 1), waits (5 s at
 * most) for the poll fd to report the client and attaches it
 * (vfu_attach_ctx). Returns the client's socket.
 */
int threaded_ctx_attach_client(struct threaded_ctx *t);

/* Destroys the context and removes its (by then empty) directory. */
void threaded_ctx_destroy(struct threaded_ctx *t);

#ifdef __cplusplus
}
#endif

#endif /* VFU_CAPI_TEST_THREADED_CTX_H */
