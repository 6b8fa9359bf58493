#include "testing/soak/capi_dma_engine.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "testing/soak/capi_register_access.h"

struct channel {
    uint64_t source;
    uint64_t destination;
    uint32_t length;
    uint32_t status;
    uint32_t error;
    uint32_t progress;
};

struct capi_dma_engine {
    struct channel channels[CAPI_DMA_ENGINE_CHANNELS];
    uint32_t irq_status;
    /* Fault lines: the second the last one went out, and those dropped
     * since (a client can fault every job it starts). */
    time_t last_fault_log;
    uint64_t faults_unlogged;
    /* One chunk of a copy through this process. */
    uint8_t buffer[CAPI_DMA_ENGINE_CHUNK];
};

/*
 * Copies between client memory and `data` over [iova, +length): the
 * entries the range spans, then vfu_sgl_read (`prot` PROT_READ) or
 * vfu_sgl_write (PROT_WRITE). 0, or -1 with errno.
 */
static int dma_access(vfu_ctx_t *ctx, uint64_t iova, void *data, size_t length, int prot) {
    size_t capacity = 4;
    for (;;) {
        dma_sg_t *sgl = calloc(capacity, dma_sg_size());
        if (sgl == NULL) {
            return -1;
        }
        errno = 0;
        int entries =
            vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)iova, length, sgl, capacity, prot);
        if (entries < -1 && errno == 0) {
            /* More entries than `capacity`: -(needed) - 1. */
            free(sgl);
            capacity = (size_t)(-(entries + 1));
            continue;
        }
        int result = -1;
        if (entries >= 0) {
            result = prot == PROT_READ ? vfu_sgl_read(ctx, sgl, (size_t)entries, data)
                                       : vfu_sgl_write(ctx, sgl, (size_t)entries, data);
        }
        int saved = errno;
        free(sgl);
        errno = saved;
        return result;
    }
}

/* The ERROR value of a failed access to one side of the copy; logged, at
 * most once a second. */
static uint32_t fault(vfu_ctx_t *ctx, struct capi_dma_engine *engine, uint32_t channel,
                      uint32_t side_error, const char *what, uint64_t iova, size_t length) {
    const int error = errno;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec != engine->last_fault_log) {
        vfu_log(ctx, LOG_WARNING,
                "dma_engine: channel %u: %s [0x%llx, +0x%zx) failed: %s (%llu similar lines "
                "suppressed)",
                channel, what, (unsigned long long)iova, length, strerror(error),
                (unsigned long long)engine->faults_unlogged);
        engine->last_fault_log = now.tv_sec;
        engine->faults_unlogged = 0;
    } else {
        engine->faults_unlogged++;
    }
    return error == ECONNRESET ? CAPI_DMA_ENGINE_ERROR_DETACHED : side_error;
}

/* Runs the channel's job to its end; its ERROR value. */
static uint32_t run_job(vfu_ctx_t *ctx, struct capi_dma_engine *engine, uint32_t index) {
    struct channel *c = &engine->channels[index];
    const uint64_t source = c->source, destination = c->destination, length = c->length;
    if (length == 0) {
        return CAPI_DMA_ENGINE_ERROR_NONE;
    }
    const uint64_t source_last = source + (length - 1);
    const uint64_t destination_last = destination + (length - 1);
    if (source_last < source || destination_last < destination ||
        (source <= destination_last && destination <= source_last)) {
        return CAPI_DMA_ENGINE_ERROR_INVALID;
    }
    for (uint64_t done = 0; done < length; done += CAPI_DMA_ENGINE_CHUNK) {
        const size_t n =
            length - done < CAPI_DMA_ENGINE_CHUNK ? (size_t)(length - done) : CAPI_DMA_ENGINE_CHUNK;
        if (dma_access(ctx, source + done, engine->buffer, n, PROT_READ) != 0) {
            return fault(ctx, engine, index, CAPI_DMA_ENGINE_ERROR_SOURCE_FAULT, "reading source",
                         source + done, n);
        }
        if (dma_access(ctx, destination + done, engine->buffer, n, PROT_WRITE) != 0) {
            return fault(ctx, engine, index, CAPI_DMA_ENGINE_ERROR_DESTINATION_FAULT,
                         "writing destination", destination + done, n);
        }
        c->progress = (uint32_t)(done + n);
    }
    return CAPI_DMA_ENGINE_ERROR_NONE;
}

static void doorbell(vfu_ctx_t *ctx, struct capi_dma_engine *engine, uint32_t index,
                     uint32_t value) {
    struct channel *c = &engine->channels[index];
    /* ABORT never starts a job, and no job is ever running to stop. */
    if ((value & CAPI_DMA_ENGINE_DOORBELL_ABORT) != 0 ||
        (value & CAPI_DMA_ENGINE_DOORBELL_START) == 0) {
        return;
    }
    c->status = CAPI_DMA_ENGINE_BUSY;
    c->error = CAPI_DMA_ENGINE_ERROR_NONE;
    c->progress = 0;
    const uint32_t error = run_job(ctx, engine, index);
    c->status = error == CAPI_DMA_ENGINE_ERROR_NONE ? CAPI_DMA_ENGINE_DONE : CAPI_DMA_ENGINE_ERROR;
    c->error = error;
    engine->irq_status |= 1u << index;
    /* MSI-X vector n; -1/ENOENT: the driver polls STATUS instead. */
    (void)vfu_irq_trigger(ctx, index);
}

static uint32_t low(uint64_t value) { return (uint32_t)value; }
static uint32_t high(uint64_t value) { return (uint32_t)(value >> 32); }
static uint64_t with_low(uint64_t value, uint32_t bits) {
    return (value & 0xffffffff00000000ull) | bits;
}
static uint64_t with_high(uint64_t value, uint32_t bits) {
    return (value & 0xffffffffull) | ((uint64_t)bits << 32);
}

static uint32_t read_register(const void *device, uint64_t reg) {
    const struct capi_dma_engine *engine = device;
    switch (reg) {
    case CAPI_DMA_ENGINE_REG_ID: return CAPI_DMA_ENGINE_ID_VALUE;
    case CAPI_DMA_ENGINE_REG_VERSION: return 1;
    case CAPI_DMA_ENGINE_REG_CHANNELS: return CAPI_DMA_ENGINE_CHANNELS;
    case CAPI_DMA_ENGINE_REG_IRQ_STATUS: return engine->irq_status;
    default: break;
    }
    const uint64_t end =
        CAPI_DMA_ENGINE_CHANNEL_BASE + CAPI_DMA_ENGINE_CHANNELS * CAPI_DMA_ENGINE_CHANNEL_STRIDE;
    if (reg < CAPI_DMA_ENGINE_CHANNEL_BASE || reg >= end) {
        return 0;
    }
    const struct channel *c =
        &engine->channels[(reg - CAPI_DMA_ENGINE_CHANNEL_BASE) / CAPI_DMA_ENGINE_CHANNEL_STRIDE];
    switch ((reg - CAPI_DMA_ENGINE_CHANNEL_BASE) % CAPI_DMA_ENGINE_CHANNEL_STRIDE) {
    case CAPI_DMA_ENGINE_REG_SOURCE_LO: return low(c->source);
    case CAPI_DMA_ENGINE_REG_SOURCE_HI: return high(c->source);
    case CAPI_DMA_ENGINE_REG_DESTINATION_LO: return low(c->destination);
    case CAPI_DMA_ENGINE_REG_DESTINATION_HI: return high(c->destination);
    case CAPI_DMA_ENGINE_REG_LENGTH: return c->length;
    case CAPI_DMA_ENGINE_REG_STATUS: return c->status;
    case CAPI_DMA_ENGINE_REG_ERROR: return c->error;
    case CAPI_DMA_ENGINE_REG_PROGRESS: return c->progress;
    default: return 0; /* DOORBELL and reserved */
    }
}

/* Stores the bytes of `value` selected by `mask` into register `reg`. */
static void write_register(vfu_ctx_t *ctx, void *device, uint64_t reg,
                           uint32_t value, uint32_t mask) {
    struct capi_dma_engine *engine = device;
    if (reg == CAPI_DMA_ENGINE_REG_IRQ_STATUS) {
        engine->irq_status &= ~(value & mask);
        return;
    }
    const uint64_t end =
        CAPI_DMA_ENGINE_CHANNEL_BASE + CAPI_DMA_ENGINE_CHANNELS * CAPI_DMA_ENGINE_CHANNEL_STRIDE;
    if (reg < CAPI_DMA_ENGINE_CHANNEL_BASE || reg >= end) {
        return; /* read-only or reserved */
    }
    const uint32_t index =
        (uint32_t)((reg - CAPI_DMA_ENGINE_CHANNEL_BASE) / CAPI_DMA_ENGINE_CHANNEL_STRIDE);
    struct channel *c = &engine->channels[index];
#define MERGE(old) (((old) & ~mask) | (value & mask))
    switch ((reg - CAPI_DMA_ENGINE_CHANNEL_BASE) % CAPI_DMA_ENGINE_CHANNEL_STRIDE) {
    case CAPI_DMA_ENGINE_REG_SOURCE_LO: c->source = with_low(c->source, MERGE(low(c->source))); break;
    case CAPI_DMA_ENGINE_REG_SOURCE_HI: c->source = with_high(c->source, MERGE(high(c->source))); break;
    case CAPI_DMA_ENGINE_REG_DESTINATION_LO:
        c->destination = with_low(c->destination, MERGE(low(c->destination)));
        break;
    case CAPI_DMA_ENGINE_REG_DESTINATION_HI:
        c->destination = with_high(c->destination, MERGE(high(c->destination)));
        break;
    case CAPI_DMA_ENGINE_REG_LENGTH: c->length = MERGE(c->length); break;
    /* Bits of bytes the access did not cover were not written. */
    case CAPI_DMA_ENGINE_REG_DOORBELL: doorbell(ctx, engine, index, value & mask); break;
    default: break; /* read-only or reserved: dropped, as hardware does */
    }
#undef MERGE
}

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    return capi_register_access(ctx, vfu_get_private(ctx), CAPI_DMA_ENGINE_BAR_SIZE, buf, count, offset,
                                is_write, read_register, write_register);
}

static int reset(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    struct capi_dma_engine *engine = vfu_get_private(ctx);
    if (type == VFU_RESET_LOST_CONN) {
        return 0; /* no job outlives the callback that ran it */
    }
    memset(engine->channels, 0, sizeof engine->channels);
    engine->irq_status = 0;
    return 0;
}

vfu_ctx_t *capi_dma_engine_create(const char *path, vfu_log_fn_t *log, int log_level) {
    struct capi_dma_engine *engine = calloc(1, sizeof *engine);
    if (engine == NULL) {
        return NULL;
    }
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, engine,
                                    VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        free(engine);
        return NULL;
    }
    if (vfu_setup_log(ctx, log, log_level) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) != 0) {
        goto fail;
    }
    /* Identity of the C++ device (vendor 0xf00d is its placeholder). */
    vfu_pci_set_id(ctx, 0xf00d, 0x0002, 0xf00d, 0x0002);
    vfu_pci_set_class(ctx, 0x08, 0x80, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, CAPI_DMA_ENGINE_BAR_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) != 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, CAPI_DMA_ENGINE_CHANNELS) != 0 ||
        vfu_setup_device_reset_cb(ctx, reset) != 0 ||
        vfu_setup_device_dma(ctx, NULL, NULL) != 0 || vfu_realize_ctx(ctx) != 0) {
        goto fail;
    }
    return ctx;
fail:;
    int saved = errno;
    capi_dma_engine_destroy(ctx);
    errno = saved;
    return NULL;
}

void capi_dma_engine_destroy(vfu_ctx_t *ctx) {
    if (ctx == NULL) {
        return;
    }
    struct capi_dma_engine *engine = vfu_get_private(ctx);
    vfu_destroy_ctx(ctx);
    free(engine);
}
