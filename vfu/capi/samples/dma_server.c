/*
 * A copy engine written against the libvfio-user API, with the register
 * interface of vfu's own DMA engine (devices/dma_engine/
 * dma_engine_registers.h), so `inspect dma-check` drives either.
 *
 * BAR0 (4 KiB): ID, VERSION, CHANNELS, IRQ_STATUS, then four channels of
 * SOURCE, DESTINATION, LENGTH, DOORBELL, STATUS, ERROR, PROGRESS. A
 * doorbell only queues the job: the copy runs in the event loop after
 * vfu_run_ctx() has replied to the client (vfu_addr_to_sgl, vfu_sgl_read,
 * vfu_sgl_write), as a device must not wait for DMA inside a region access
 * (the client may be blocked on that access). MSI-X vector n signals the
 * end of channel n's job.
 *
 * Migration (v2 callbacks): the saved state is the register file; jobs do
 * not run while the device is stopped, and a loaded state replaces the
 * registers when the device leaves RESUME with a whole stream.
 *
 *   dma_server SOCKET [CLIENTS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "libvfio-user.h"
#include "sample_loop.h"

#define BAR_SIZE 4096
#define CHANNELS 4
#define CHUNK (64 * 1024)
#define MAX_SGS 16
#define MSIX_TABLE 0x800
#define MSIX_PBA 0xc00

enum { IDLE = 0, BUSY = 1, DONE = 2, FAILED = 3 };
enum { ERROR_NONE = 0, ERROR_SOURCE = 1, ERROR_DESTINATION = 2, ERROR_ABORTED = 3 };

struct channel {
    uint64_t source, destination;
    uint32_t length, status, error, progress;
};

static struct {
    struct channel channels[CHANNELS];
    uint32_t irq_status;
    uint8_t msix[BAR_SIZE - MSIX_TABLE];
    dma_sg_t *sgl;
    uint8_t buffer[CHUNK];
} dev;

/* What a save streams and a load restores. */
struct saved_state {
    struct channel channels[CHANNELS];
    uint32_t irq_status;
};

static struct {
    vfu_migr_state_t state;
    struct saved_state outgoing;
    size_t read_at;
    struct saved_state incoming;
    size_t incoming_len;
} mig = {.state = VFU_MIGR_STATE_RUNNING};

static uint32_t channel_reg(const struct channel *c, unsigned reg) {
    switch (reg) {
    case 0x00: return (uint32_t)c->source;
    case 0x04: return (uint32_t)(c->source >> 32);
    case 0x08: return (uint32_t)c->destination;
    case 0x0c: return (uint32_t)(c->destination >> 32);
    case 0x10: return c->length;
    case 0x18: return c->status;
    case 0x1c: return c->error;
    case 0x20: return c->progress;
    default: return 0;
    }
}

static uint32_t read_reg(unsigned offset) {
    if (offset == 0x000) return 0x45414d44; /* "DMAE" */
    if (offset == 0x004) return 1;
    if (offset == 0x008) return CHANNELS;
    if (offset == 0x00c) return dev.irq_status;
    if (offset >= 0x100 && offset < 0x100 + CHANNELS * 0x40) {
        return channel_reg(&dev.channels[(offset - 0x100) / 0x40], (offset - 0x100) % 0x40);
    }
    return 0;
}

static void write_reg(unsigned offset, uint32_t value) {
    if (offset == 0x00c) {
        dev.irq_status &= ~value;
        return;
    }
    if (offset < 0x100 || offset >= 0x100 + CHANNELS * 0x40) return;
    struct channel *c = &dev.channels[(offset - 0x100) / 0x40];
    switch ((offset - 0x100) % 0x40) {
    case 0x00: c->source = (c->source & ~0xffffffffull) | value; break;
    case 0x04: c->source = (c->source & 0xffffffffull) | ((uint64_t)value << 32); break;
    case 0x08: c->destination = (c->destination & ~0xffffffffull) | value; break;
    case 0x0c: c->destination = (c->destination & 0xffffffffull) | ((uint64_t)value << 32); break;
    case 0x10: c->length = value; break;
    case 0x14:
        if ((value & 2) && c->status == BUSY) {
            c->status = FAILED;
            c->error = ERROR_ABORTED;
        } else if ((value & 1) && !(value & 2) && c->status != BUSY) {
            c->status = BUSY; /* runs from the event loop */
            c->error = ERROR_NONE;
            c->progress = 0;
        }
        break;
    }
}

/* Registers are 32-bit; an access of any size and alignment is split. */
static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    if (offset < 0 || (size_t)offset + count > BAR_SIZE) {
        errno = EINVAL;
        return -1;
    }
    size_t i = 0;
    while (i < count) {
        unsigned at = (unsigned)offset + (unsigned)i;
        if (at >= MSIX_TABLE) {
            /* MSI-X table and PBA: plain memory here. */
            if (is_write) dev.msix[at - MSIX_TABLE] = (uint8_t)buf[i];
            else buf[i] = (char)dev.msix[at - MSIX_TABLE];
            i++;
            continue;
        }
        unsigned reg = at & ~3u;
        if (!is_write) {
            buf[i] = (char)(read_reg(reg) >> ((at & 3u) * 8));
            i++;
            continue;
        }
        /* Merge this access's bytes of the register, then write it once;
         * bytes of IRQ_STATUS (write 1 to clear) and DOORBELL not written
         * count as 0. */
        int merge_old = reg != 0x00c && !(reg >= 0x100 && (reg - 0x100) % 0x40 == 0x14);
        uint32_t value = merge_old ? read_reg(reg) : 0;
        while (i < count && (((unsigned)offset + (unsigned)i) & ~3u) == reg) {
            unsigned shift = (((unsigned)offset + (unsigned)i) & 3u) * 8;
            value = (value & ~(0xffu << shift)) | ((uint32_t)(uint8_t)buf[i] << shift);
            i++;
        }
        write_reg(reg, value);
    }
    return (ssize_t)count;
}

/* Copies one chunk of a job; returns 0, or the error to end it with. */
static uint32_t copy_chunk(vfu_ctx_t *ctx, struct channel *c, size_t n) {
    int sgs = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(c->source + c->progress), n, dev.sgl,
                              MAX_SGS, PROT_READ);
    if (sgs < 0 || vfu_sgl_read(ctx, dev.sgl, (size_t)sgs, dev.buffer) != 0) return ERROR_SOURCE;
    sgs = vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(c->destination + c->progress), n, dev.sgl,
                          MAX_SGS, PROT_WRITE);
    if (sgs < 0 || vfu_sgl_write(ctx, dev.sgl, (size_t)sgs, dev.buffer) != 0) {
        return ERROR_DESTINATION;
    }
    return ERROR_NONE;
}

/* The event loop's idle work: one chunk of each busy channel. */
static int run_jobs(vfu_ctx_t *ctx) {
    int busy = 0;
    if (mig.state != VFU_MIGR_STATE_RUNNING && mig.state != VFU_MIGR_STATE_PRE_COPY) {
        return 0; /* stopped: jobs wait */
    }
    for (unsigned i = 0; i < CHANNELS; i++) {
        struct channel *c = &dev.channels[i];
        if (c->status != BUSY) continue;
        size_t left = c->length - c->progress;
        size_t n = left < CHUNK ? left : CHUNK;
        uint32_t error = n == 0 ? ERROR_NONE : copy_chunk(ctx, c, n);
        if (error == ERROR_NONE) c->progress += (uint32_t)n;
        if (error != ERROR_NONE || c->progress == c->length) {
            c->status = error == ERROR_NONE ? DONE : FAILED;
            c->error = error;
            dev.irq_status |= 1u << i;
            vfu_irq_trigger(ctx, i);
        } else {
            busy = 1;
        }
    }
    return busy;
}

static int reset(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    /* Jobs in flight are abandoned, registers back to their reset values. */
    memset(dev.channels, 0, sizeof(dev.channels));
    dev.irq_status = 0;
    return 0;
}

static int migr_transition(vfu_ctx_t *ctx, vfu_migr_state_t state) {
    if (mig.state == VFU_MIGR_STATE_RESUME && state != VFU_MIGR_STATE_RESUME) {
        if (mig.incoming_len != sizeof(mig.incoming)) {
            errno = EINVAL; /* an incomplete stream */
            return -1;
        }
        memcpy(dev.channels, mig.incoming.channels, sizeof(dev.channels));
        dev.irq_status = mig.incoming.irq_status;
    }
    if (state == VFU_MIGR_STATE_STOP_AND_COPY) {
        memcpy(mig.outgoing.channels, dev.channels, sizeof(dev.channels));
        mig.outgoing.irq_status = dev.irq_status;
        mig.read_at = 0;
    }
    if (state == VFU_MIGR_STATE_RESUME) {
        mig.incoming_len = 0;
    }
    mig.state = state;
    return 0;
}

static ssize_t migr_read(vfu_ctx_t *ctx, void *buf, uint64_t count) {
    if (mig.state != VFU_MIGR_STATE_STOP_AND_COPY) {
        return 0; /* nothing to send before stop-and-copy */
    }
    size_t left = sizeof(mig.outgoing) - mig.read_at;
    size_t n = count < left ? (size_t)count : left;
    memcpy(buf, (const uint8_t *)&mig.outgoing + mig.read_at, n);
    mig.read_at += n;
    return (ssize_t)n;
}

static ssize_t migr_write(vfu_ctx_t *ctx, void *buf, uint64_t count) {
    if (count > sizeof(mig.incoming) - mig.incoming_len) {
        errno = EINVAL; /* more than a saved state */
        return -1;
    }
    memcpy((uint8_t *)&mig.incoming + mig.incoming_len, buf, count);
    mig.incoming_len += count;
    return (ssize_t)count;
}

static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}
static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [CLIENTS]\n", argv[0]);
        return 2;
    }
    dev.sgl = calloc(MAX_SGS, dma_sg_size());
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, argv[1], LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                                    VFU_DEV_TYPE_PCI);
    if (ctx == NULL || dev.sgl == NULL) {
        fprintf(stderr, "vfu_create_ctx: %s\n", strerror(errno));
        return 1;
    }
    const vfu_migration_callbacks_t migration = {
        .version = VFU_MIGR_CALLBACKS_VERS,
        .transition = migr_transition,
        .read_data = migr_read,
        .write_data = migr_write,
    };
    struct msixcap msix;
    memset(&msix, 0, sizeof(msix));
    msix.hdr.id = PCI_CAP_ID_MSIX;
    msix.mxc.ts = CHANNELS - 1;
    msix.mtab.tbir = 0;
    msix.mtab.to = MSIX_TABLE >> 3;
    msix.mpba.pbir = 0;
    msix.mpba.pbao = MSIX_PBA >> 3;
    if (vfu_setup_log(ctx, sample_log, LOG_ERR) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 1) != 0) {
        fprintf(stderr, "setup: %s\n", strerror(errno));
        return 1;
    }
    vfu_pci_set_id(ctx, 0xf00d, 0x0002, 0xf00d, 0x0002);
    vfu_pci_set_class(ctx, 0x08, 0x80, 0x00);
    if (vfu_pci_add_capability(ctx, 0, 0, &msix) < 0 ||
        vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, BAR_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) != 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, CHANNELS) != 0 ||
        vfu_setup_device_reset_cb(ctx, reset) != 0 ||
        vfu_setup_device_dma(ctx, dma_register, dma_unregister) != 0 ||
        vfu_setup_device_migration_callbacks(ctx, 0, &migration) != 0 ||
        vfu_realize_ctx(ctx) != 0) {
        fprintf(stderr, "setup: %s\n", strerror(errno));
        return 1;
    }
    printf("serving %s\n", argv[1]);
    fflush(stdout);
    int rc = sample_serve(ctx, argc > 2 ? atoi(argv[2]) : 0, run_jobs);
    vfu_destroy_ctx(ctx);
    free(dev.sgl);
    return rc;
}
