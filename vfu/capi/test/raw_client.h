/*
 * A raw vfio-user client for the C tests: builds messages byte by byte and
 * sends them whole or in pieces, so the tests control exactly what the
 * server's socket holds when vfu_run_ctx() runs.
 */
#ifndef VFU_CAPI_TEST_RAW_CLIENT_H
#define VFU_CAPI_TEST_RAW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fails the test (prints where and exits 1) unless `cond`. */
#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            raw_fail(__FILE__, __LINE__, #cond);                                \
        }                                                                       \
    } while (0)

void raw_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* A connected socket to `path` (blocking). */
int raw_connect(const char *path);

/*
 * Builds a command message (header + payload) into `out` (at least
 * 16 + len bytes); returns its size.
 */
size_t raw_build(uint8_t *out, uint16_t msg_id, uint16_t cmd, const void *payload, size_t len);

/* Sends `len` bytes, with `nfds` fds attached to the first byte. */
void raw_send(int sock, const void *bytes, size_t len, const int *fds, int nfds);

/* Sends one whole command. */
void raw_command(int sock, uint16_t msg_id, uint16_t cmd, const void *payload, size_t len,
                 const int *fds, int nfds);

/*
 * Receives one whole message (blocking): its header and up to `max` payload
 * bytes into `payload`; returns the payload size.
 */
size_t raw_receive(int sock, struct vfio_user_header *hdr, void *payload, size_t max);

/* Whether `fd` is readable within `timeout_ms`. */
int raw_readable(int fd, int timeout_ms);

/* VERSION 0.2 with "{}" capabilities; returns the message size built. */
size_t raw_version(uint8_t *out, uint16_t msg_id);

/* REGION_READ / REGION_WRITE payloads. */
size_t raw_region_read(uint8_t *out, uint16_t msg_id, uint32_t region, uint64_t offset,
                       uint32_t count);
size_t raw_region_write(uint8_t *out, uint16_t msg_id, uint32_t region, uint64_t offset,
                        const void *data, uint32_t count);

/*
 * Sends DMA_MAP (READ | WRITE) of [iova, iova + size), backed by `fd` from
 * its offset 0 (fd < 0: no fd).
 */
void raw_dma_map(int sock, uint16_t msg_id, uint64_t iova, uint64_t size, int fd);
/* Sends DMA_UNMAP of [iova, iova + size). */
void raw_dma_unmap(int sock, uint16_t msg_id, uint64_t iova, uint64_t size);

/* A memfd of `size` bytes, each `fill`: guest memory to map. */
int raw_guest_memfd(size_t size, uint8_t fill);

#ifdef __cplusplus
}
#endif

#endif /* VFU_CAPI_TEST_RAW_CLIENT_H */
