#include "testing/soak/capi_scratchpad.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct capi_scratchpad {
    uint8_t bar0[CAPI_SCRATCHPAD_BAR_SIZE];
    /* Client mappings registered and not yet unregistered. */
    uint64_t dma_mappings;
};

static uint64_t load64(const uint8_t *bar, uint32_t offset) {
    uint64_t value;
    memcpy(&value, bar + offset, sizeof value);
    return value;
}

static uint32_t load32(const uint8_t *bar, uint32_t offset) {
    uint32_t value;
    memcpy(&value, bar + offset, sizeof value);
    return value;
}

static void store32(uint8_t *bar, uint32_t offset, uint32_t value) {
    memcpy(bar + offset, &value, sizeof value);
}

/*
 * Reads [iova, iova + length) of client memory into `out`: the entries the
 * range spans (any number of them), then the copy. 0, or -1 with errno.
 */
static int dma_read(vfu_ctx_t *ctx, uint64_t iova, void *out, size_t length) {
    size_t capacity = 4;
    for (;;) {
        dma_sg_t *sgl = calloc(capacity, dma_sg_size());
        if (sgl == NULL) {
            return -1;
        }
        errno = 0;
        int entries = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)iova, length, sgl,
                                      capacity, PROT_READ);
        if (entries < -1 && errno == 0) {
            /* More entries than `capacity`: -(needed) - 1. */
            free(sgl);
            capacity = (size_t)(-(entries + 1));
            continue;
        }
        int result = entries < 0 ? -1 : vfu_sgl_read(ctx, sgl, (size_t)entries, out);
        int saved = errno;
        free(sgl);
        errno = saved;
        return result;
    }
}

/* The doorbell: copies [source, +length) of client memory to BAR0 at 0. */
static void run_copy(vfu_ctx_t *ctx, struct capi_scratchpad *pad) {
    const uint64_t source = load64(pad->bar0, CAPI_SCRATCHPAD_REG_SOURCE);
    const uint32_t length = load32(pad->bar0, CAPI_SCRATCHPAD_REG_LENGTH);
    /*
     * As the C++ device: at most the scratch area is read, and a longer
     * copy fails after that read.
     */
    const size_t bytes = length < CAPI_SCRATCHPAD_SCRATCH_SIZE ? length
                                                               : CAPI_SCRATCHPAD_SCRATCH_SIZE;
    uint8_t buffer[CAPI_SCRATCHPAD_SCRATCH_SIZE];
    const int read = dma_read(ctx, source, buffer, bytes);
    if (read == 0 && length <= CAPI_SCRATCHPAD_SCRATCH_SIZE) {
        memcpy(pad->bar0, buffer, bytes);
        store32(pad->bar0, CAPI_SCRATCHPAD_REG_STATUS, CAPI_SCRATCHPAD_DONE);
    } else {
        store32(pad->bar0, CAPI_SCRATCHPAD_REG_STATUS, CAPI_SCRATCHPAD_FAILED);
    }
}

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    struct capi_scratchpad *pad = vfu_get_private(ctx);
    /* The library checks accesses against the region; this keeps us safe
     * whatever it lets through. */
    if (offset < 0 || count > CAPI_SCRATCHPAD_BAR_SIZE ||
        (uint64_t)offset > CAPI_SCRATCHPAD_BAR_SIZE - count) {
        errno = EINVAL;
        return -1;
    }
    if (!is_write) {
        memcpy(buf, pad->bar0 + offset, count);
        return (ssize_t)count;
    }
    const uint64_t end = (uint64_t)offset + count;
    if ((uint64_t)offset < CAPI_SCRATCHPAD_REG_STATUS + 4 && end > CAPI_SCRATCHPAD_REG_STATUS) {
        errno = EINVAL; /* the status register is read-only */
        return -1;
    }
    memcpy(pad->bar0 + offset, buf, count);
    if ((uint64_t)offset <= CAPI_SCRATCHPAD_REG_DOORBELL && end > CAPI_SCRATCHPAD_REG_DOORBELL) {
        store32(pad->bar0, CAPI_SCRATCHPAD_REG_STATUS, CAPI_SCRATCHPAD_BUSY);
        run_copy(ctx, pad);
    }
    return (ssize_t)count;
}

static int reset(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    struct capi_scratchpad *pad = vfu_get_private(ctx);
    /* State survives clients; only a reset of the device clears it. */
    if (type != VFU_RESET_LOST_CONN) {
        memset(pad->bar0, 0, sizeof pad->bar0);
    }
    return 0;
}

static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    (void)info;
    struct capi_scratchpad *pad = vfu_get_private(ctx);
    pad->dma_mappings++;
}

static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info) {
    struct capi_scratchpad *pad = vfu_get_private(ctx);
    if (pad->dma_mappings == 0) {
        vfu_log(ctx, LOG_ERR, "scratchpad: unregister of %p without a registered mapping",
                info->iova.iov_base);
        return;
    }
    pad->dma_mappings--;
}

vfu_ctx_t *capi_scratchpad_create(const char *path, vfu_log_fn_t *log, int log_level) {
    struct capi_scratchpad *pad = calloc(1, sizeof *pad);
    if (pad == NULL) {
        return NULL;
    }
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, pad, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        free(pad);
        return NULL;
    }
    if (vfu_setup_log(ctx, log, log_level) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) != 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, CAPI_SCRATCHPAD_BAR_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) != 0 ||
        vfu_setup_device_reset_cb(ctx, reset) != 0 ||
        vfu_setup_device_dma(ctx, dma_register, dma_unregister) != 0 ||
        vfu_realize_ctx(ctx) != 0) {
        int saved = errno;
        capi_scratchpad_destroy(ctx);
        errno = saved;
        return NULL;
    }
    return ctx;
}

void capi_scratchpad_destroy(vfu_ctx_t *ctx) {
    if (ctx == NULL) {
        return;
    }
    struct capi_scratchpad *pad = vfu_get_private(ctx);
    vfu_destroy_ctx(ctx);
    free(pad);
}
