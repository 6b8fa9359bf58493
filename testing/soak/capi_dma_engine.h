/*
 * The DMA engine (devices/dma_engine/dma_engine_registers.h) written against
 * the libvfio-user C API alone, for the C API's soak server: the same BAR0
 * register file and job results, so the soak's dma_engine patterns run
 * against it unchanged.
 *
 * BAR0: 4 KiB, 32-bit little-endian registers, any access size and
 * alignment (byte by byte); reserved offsets read 0 and ignore writes.
 *   0x000 ID "DMAE", 0x004 VERSION 1, 0x008 CHANNELS 4, 0x00c IRQ_STATUS
 *   (RW1C, bit n: a job of channel n ended); channel n at 0x100 + n * 0x40:
 *   SOURCE_LO/HI, DESTINATION_LO/HI, LENGTH, DOORBELL (bit 0 START, bit 1
 *   ABORT), STATUS (0 idle, 1 busy, 2 done, 3 error), ERROR, PROGRESS.
 * Job errors as there: 1 source fault, 2 destination fault, 4 the client
 * left during the job (a DMA call failed with ECONNRESET), 5 the ranges
 * overlap or wrap.
 *
 * Differences, in timing only: the C++ engine copies on a thread per
 * channel; this one runs the whole job inside the doorbell write's region
 * callback, 64 KiB at a time through vfu_addr_to_sgl + vfu_sgl_read /
 * vfu_sgl_write (for memory shared without an fd, DMA_READ / DMA_WRITE
 * messages the poll-mode library waits for on the caller's thread). So a
 * channel is never seen busy, ABORT never finds a job to stop, and the job
 * has ended (and raised MSI-X vector n) by the time the doorbell write's
 * reply leaves. The MSI-X table and PBA (0x800, 0xc00) are not modelled:
 * the client's SET_IRQS eventfds alone route the interrupt.
 *
 * DEVICE_RESET restores the reset values; a client leaving changes nothing.
 * One thread at a time, as the context.
 */
#ifndef VFU_TESTING_SOAK_CAPI_DMA_ENGINE_H_
#define VFU_TESTING_SOAK_CAPI_DMA_ENGINE_H_

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAPI_DMA_ENGINE_CHANNELS 4u
#define CAPI_DMA_ENGINE_CHUNK (64u * 1024u)
#define CAPI_DMA_ENGINE_BAR_SIZE 4096u
#define CAPI_DMA_ENGINE_REG_ID 0x000u
#define CAPI_DMA_ENGINE_REG_VERSION 0x004u
#define CAPI_DMA_ENGINE_REG_CHANNELS 0x008u
#define CAPI_DMA_ENGINE_REG_IRQ_STATUS 0x00cu
#define CAPI_DMA_ENGINE_CHANNEL_BASE 0x100u
#define CAPI_DMA_ENGINE_CHANNEL_STRIDE 0x40u
#define CAPI_DMA_ENGINE_REG_SOURCE_LO 0x00u
#define CAPI_DMA_ENGINE_REG_SOURCE_HI 0x04u
#define CAPI_DMA_ENGINE_REG_DESTINATION_LO 0x08u
#define CAPI_DMA_ENGINE_REG_DESTINATION_HI 0x0cu
#define CAPI_DMA_ENGINE_REG_LENGTH 0x10u
#define CAPI_DMA_ENGINE_REG_DOORBELL 0x14u
#define CAPI_DMA_ENGINE_REG_STATUS 0x18u
#define CAPI_DMA_ENGINE_REG_ERROR 0x1cu
#define CAPI_DMA_ENGINE_REG_PROGRESS 0x20u
#define CAPI_DMA_ENGINE_ID_VALUE 0x45414d44u
#define CAPI_DMA_ENGINE_DOORBELL_START 1u
#define CAPI_DMA_ENGINE_DOORBELL_ABORT 2u

enum capi_dma_engine_status {
    CAPI_DMA_ENGINE_IDLE = 0,
    CAPI_DMA_ENGINE_BUSY = 1,
    CAPI_DMA_ENGINE_DONE = 2,
    CAPI_DMA_ENGINE_ERROR = 3,
};

enum capi_dma_engine_error {
    CAPI_DMA_ENGINE_ERROR_NONE = 0,
    CAPI_DMA_ENGINE_ERROR_SOURCE_FAULT = 1,
    CAPI_DMA_ENGINE_ERROR_DESTINATION_FAULT = 2,
    CAPI_DMA_ENGINE_ERROR_ABORTED = 3,
    CAPI_DMA_ENGINE_ERROR_DETACHED = 4,
    CAPI_DMA_ENGINE_ERROR_INVALID = 5,
};

/*
 * A realized, non-blocking (LIBVFIO_USER_FLAG_ATTACH_NB) context serving a
 * DMA engine at `path`, its log lines going to `log` at `log_level`. NULL
 * with errno on failure. Release with capi_dma_engine_destroy().
 */
vfu_ctx_t *capi_dma_engine_create(const char *path, vfu_log_fn_t *log, int log_level);

/* Destroys the context (disconnecting any client) and the device's state. */
void capi_dma_engine_destroy(vfu_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TESTING_SOAK_CAPI_DMA_ENGINE_H_ */
