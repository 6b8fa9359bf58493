/*
 * The scratchpad device (devices/scratchpad/scratchpad_device.h) written
 * against the libvfio-user C API alone, for the C API's soak server: the
 * same BAR0 registers, so the soak's scratchpad patterns run against it
 * unchanged.
 *
 * BAR0 (4 KiB, little-endian registers at its top):
 *   0x000-0xfdf  scratch memory
 *   0xfe0  u64   DMA source IOVA
 *   0xfe8  u32   DMA length (bytes, copied to BAR0 offset 0)
 *   0xfec  u32   DMA status: 0 idle, 1 busy, 2 done, 3 failed (read-only: a
 *                write touching it fails with EINVAL and changes nothing)
 *   0xff0  u32   doorbell: writing any value starts the copy
 *
 * One difference in timing, none in what a client reads: the C++ device
 * copies on its own thread; this one copies inside the doorbell write's
 * region callback (vfu_addr_to_sgl + vfu_sgl_read), so for memory the client
 * shared without an fd the poll-mode library sends DMA_READ and waits for
 * its reply on the caller's thread. Status reads "busy" only during that
 * callback, and shows done or failed by the time the write's reply leaves.
 *
 * DEVICE_RESET zeroes BAR0; a client leaving changes nothing (the next one
 * reads what the last one wrote). One thread at a time, as the context.
 */
#ifndef VFU_TESTING_SOAK_CAPI_SCRATCHPAD_H_
#define VFU_TESTING_SOAK_CAPI_SCRATCHPAD_H_

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAPI_SCRATCHPAD_BAR_SIZE 4096u
#define CAPI_SCRATCHPAD_REG_SOURCE 0xfe0u
#define CAPI_SCRATCHPAD_REG_LENGTH 0xfe8u
#define CAPI_SCRATCHPAD_REG_STATUS 0xfecu
#define CAPI_SCRATCHPAD_REG_DOORBELL 0xff0u
#define CAPI_SCRATCHPAD_SCRATCH_SIZE CAPI_SCRATCHPAD_REG_SOURCE

enum capi_scratchpad_status {
    CAPI_SCRATCHPAD_IDLE = 0,
    CAPI_SCRATCHPAD_BUSY = 1,
    CAPI_SCRATCHPAD_DONE = 2,
    CAPI_SCRATCHPAD_FAILED = 3,
};

/*
 * A realized, non-blocking (LIBVFIO_USER_FLAG_ATTACH_NB) context serving a
 * scratchpad at `path`, its log lines going to `log` at `log_level`. NULL
 * with errno on failure. Release with capi_scratchpad_destroy().
 */
vfu_ctx_t *capi_scratchpad_create(const char *path, vfu_log_fn_t *log, int log_level);

/* Destroys the context (disconnecting any client) and the device's state. */
void capi_scratchpad_destroy(vfu_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TESTING_SOAK_CAPI_SCRATCHPAD_H_ */
