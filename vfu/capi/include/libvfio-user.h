/*
 * A libvfio-user-compatible server API, implemented on vfu's protocol engine.
 *
 * Every name, constant, enum value, struct layout and function signature
 * here matches libvfio-user's public header, so a device server written for
 * libvfio-user builds against this header unchanged and links against this
 * library instead (libvfio-user.so.0, or the Bazel target
 * //vfu/capi:libvfio_user). Differences in behaviour are listed in
 * vfu/capi/README.md.
 *
 * Threads: as with libvfio-user, one context is driven by one thread at a
 * time (the caller serialises calls on a context). vfu_irq_trigger may be
 * called from any thread.
 */
#ifndef LIB_VFIO_USER_H
#define LIB_VFIO_USER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "pci_caps/dsn.h"
#include "pci_caps/msi.h"
#include "pci_caps/msix.h"
#include "pci_caps/pm.h"
#include "pci_caps/px.h"
#include "pci_defs.h"
#include "vfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LIB_VFIO_USER_MAJOR 0
#define LIB_VFIO_USER_MINOR 1

/* An IO virtual address in the client's DMA space; never dereferenced. */
typedef void *vfu_dma_addr_t;

/* One scatter/gather entry. Opaque: allocate dma_sg_size() bytes per entry. */
struct dma_sg;
typedef struct dma_sg dma_sg_t;

typedef struct vfu_ctx vfu_ctx_t;

/* Bytes of one dma_sg_t. */
size_t dma_sg_size(void);

/*
 * vfu_attach_ctx() and vfu_run_ctx() never wait: they return -1 with errno
 * EAGAIN when there is nothing to do yet. Without it, vfu_attach_ctx() waits
 * for a client and vfu_run_ctx() serves it until it leaves.
 */
#define LIBVFIO_USER_FLAG_ATTACH_NB (1 << 0)

/*
 * vfu extension: vfu's threaded server serves the context. Its IO thread
 * handles the socket and its worker threads run the callbacks, one command
 * at a time. vfu_attach_ctx() reports a client's arrival, vfu_run_ctx() its
 * departure (-1/ENOTCONN; 0 while it is served, when non-blocking), and
 * vfu_get_poll_fd() is readable while either waits to be reported. The
 * socket is created by vfu_realize_ctx(); quiesce callbacks are not called.
 */
#define VFU_FLAG_THREADED (1 << 16)

typedef enum {
    VFU_TRANS_SOCK,
    /* Reserved by libvfio-user for its own tests; not supported here. */
    VFU_TRANS_PIPE,
    VFU_TRANS_MAX
} vfu_trans_t;

typedef enum {
    VFU_DEV_TYPE_PCI
} vfu_dev_type_t;

/*
 * Creates a context and starts listening on a UNIX socket at `path` (which
 * must not exist yet). One ERR and one REQ interrupt are set up by default.
 * NULL with errno on failure.
 */
vfu_ctx_t *vfu_create_ctx(vfu_trans_t trans, const char *path, int flags, void *pvt,
                          vfu_dev_type_t dev_type);

/* Ends device setup; required before vfu_attach_ctx(). 0, or -1 and errno. */
int vfu_realize_ctx(vfu_ctx_t *vfu_ctx);

/*
 * Accepts a client. 0 on success; -1 with errno EAGAIN when the context is
 * non-blocking and no client is waiting.
 */
int vfu_attach_ctx(vfu_ctx_t *vfu_ctx);

/*
 * The fd to wait on (epoll, poll): the listening socket before a client is
 * attached, the client's socket after. Ask again after vfu_attach_ctx()
 * succeeds and after vfu_run_ctx() reports ENOTCONN.
 */
int vfu_get_poll_fd(vfu_ctx_t *vfu_ctx);

/*
 * Serves the attached client. Non-blocking contexts handle the commands that
 * have fully arrived and return how many (0 when none); blocking contexts
 * serve until the client leaves. -1 with errno: ENOTCONN once the client is
 * gone (after the reset callback with VFU_RESET_LOST_CONN), EBUSY while the
 * device has not finished a quiesce it deferred.
 */
int vfu_run_ctx(vfu_ctx_t *vfu_ctx);

/* Releases the context, disconnecting any client. */
void vfu_destroy_ctx(vfu_ctx_t *vfu_ctx);

/* The `pvt` given to vfu_create_ctx(). */
void *vfu_get_private(vfu_ctx_t *vfu_ctx);

/* Log sink: `level` as in syslog(3), `msg` without a trailing newline. */
typedef void (vfu_log_fn_t)(vfu_ctx_t *vfu_ctx, int level, const char *msg);

/* Formats and passes a line to the context's log sink (if `level` passes). */
void vfu_log(vfu_ctx_t *vfu_ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Installs the log sink and the most verbose level passed to it. */
int vfu_setup_log(vfu_ctx_t *vfu_ctx, vfu_log_fn_t *log, int level);

/*
 * Region access: read into or write from `buf` `count` bytes at `offset`
 * within the region. Returns the bytes handled, or -1 with errno.
 */
typedef ssize_t (vfu_region_access_cb_t)(vfu_ctx_t *vfu_ctx, char *buf, size_t count,
                                         loff_t offset, bool is_write);

#define VFU_REGION_FLAG_READ      (1 << 0)
#define VFU_REGION_FLAG_WRITE     (1 << 1)
#define VFU_REGION_FLAG_RW        (VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE)
/* Memory rather than IO space. */
#define VFU_REGION_FLAG_MEM       (1 << 2)
/* Config space only: every access goes to the callback. */
#define VFU_REGION_FLAG_ALWAYS_CB (1 << 3)
#define VFU_REGION_FLAG_MASK \
    (VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM | VFU_REGION_FLAG_ALWAYS_CB)

/*
 * Describes region `region_idx`. `mmap_areas` (or the whole region when NULL)
 * may be mapped by the client from `fd` at `offset`; the library owns `fd`
 * from then on. The config space region's size is fixed by the PCI type.
 */
int vfu_setup_region(vfu_ctx_t *vfu_ctx, int region_idx, size_t size,
                     vfu_region_access_cb_t *region_access, int flags,
                     struct iovec *mmap_areas, uint32_t nr_mmap_areas, int fd,
                     uint64_t offset);

typedef enum vfu_reset_type {
    /* The client reset the device (DEVICE_RESET). */
    VFU_RESET_DEVICE,
    /* The client's connection is gone; its state is released after this. */
    VFU_RESET_LOST_CONN,
    /* The client wrote Initiate FLR in the PCI Express capability. */
    VFU_RESET_PCI_FLR
} vfu_reset_type_t;

/*
 * Asked before the library changes what the device depends on (DMA map or
 * unmap, reset, migration state). 0: quiesced now. -1 with errno EBUSY: the
 * device finishes later and calls vfu_device_quiesced().
 */
typedef int (vfu_device_quiesce_cb_t)(vfu_ctx_t *vfu_ctx);

void vfu_setup_device_quiesce_cb(vfu_ctx_t *vfu_ctx, vfu_device_quiesce_cb_t *quiesce_cb);

/*
 * Completes a deferred quiesce: 0, or the errno that fails the operation
 * that needed it (the client then gets an error reply).
 */
int vfu_device_quiesced(vfu_ctx_t *vfu_ctx, int quiesce_errno);

typedef int (vfu_reset_cb_t)(vfu_ctx_t *vfu_ctx, vfu_reset_type_t type);

int vfu_setup_device_reset_cb(vfu_ctx_t *vfu_ctx, vfu_reset_cb_t *reset);

/*
 * A range of client memory. `iova` is always set; the others only when the
 * client shared the memory with an fd and it is mapped into this process:
 * `vaddr` is where iova starts, `mapping` the whole mmap()ed range,
 * `page_size` its page size and `prot` its mmap(2) protection.
 */
typedef struct vfu_dma_info {
    struct iovec iova;
    void *vaddr;
    struct iovec mapping;
    size_t page_size;
    uint32_t prot;
} vfu_dma_info_t;

typedef void (vfu_dma_register_cb_t)(vfu_ctx_t *vfu_ctx, vfu_dma_info_t *info);
/* Returns only once the device no longer uses the range. */
typedef void (vfu_dma_unregister_cb_t)(vfu_ctx_t *vfu_ctx, vfu_dma_info_t *info);

/* Enables DMA (vfu_addr_to_sgl() and friends) and sets the callbacks. */
int vfu_setup_device_dma(vfu_ctx_t *vfu_ctx, vfu_dma_register_cb_t *dma_register,
                         vfu_dma_unregister_cb_t *dma_unregister);

enum vfu_dev_irq_type {
    VFU_DEV_INTX_IRQ,
    VFU_DEV_MSI_IRQ,
    VFU_DEV_MSIX_IRQ,
    VFU_DEV_ERR_IRQ,
    VFU_DEV_REQ_IRQ,
    VFU_DEV_NUM_IRQS
};

int vfu_setup_device_nr_irqs(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type, uint32_t count);

/* The client masked (`mask`) or unmasked vectors [start, start + count). */
typedef void (vfu_dev_irq_state_cb_t)(vfu_ctx_t *vfu_ctx, uint32_t start, uint32_t count,
                                      bool mask);

int vfu_setup_irq_state_callback(vfu_ctx_t *vfu_ctx, enum vfu_dev_irq_type type,
                                 vfu_dev_irq_state_cb_t *cb);

typedef enum {
    VFU_MIGR_STATE_STOP,
    VFU_MIGR_STATE_RUNNING,
    VFU_MIGR_STATE_STOP_AND_COPY,
    VFU_MIGR_STATE_PRE_COPY,
    VFU_MIGR_STATE_RESUME
} vfu_migr_state_t;

#define VFU_MIGR_CALLBACKS_VERS 2

/* The device has data to save in PRE_COPY (enables the PRE_COPY states). */
#define LIBVFIO_USER_MIG_FLAG_HAVE_DATA (1 << 0)

/* Migration (vfio-user migration v2): all three are required. */
typedef struct {
    /* VFU_MIGR_CALLBACKS_VERS. */
    int version;
    /* Move to `state`; -1 with errno fails the transition. */
    int (*transition)(vfu_ctx_t *vfu_ctx, vfu_migr_state_t state);
    /* Up to `count` bytes of device state; 0 at its end; -1 with errno. */
    ssize_t (*read_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);
    /* `count` bytes of device state to load; -1 with errno. */
    ssize_t (*write_data)(vfu_ctx_t *vfu_ctx, void *buf, uint64_t count);
} vfu_migration_callbacks_t;

int vfu_setup_device_migration_callbacks(vfu_ctx_t *vfu_ctx, uint64_t flags,
                                         const vfu_migration_callbacks_t *callbacks);

/* Raises vector `subindex` of the interrupt type the client enabled. */
int vfu_irq_trigger(vfu_ctx_t *vfu_ctx, uint32_t subindex);

/*
 * Splits [dma_addr, dma_addr + len) into entries of `sgl` (at most
 * `max_nr_sgs`), checking the client granted `prot` (PROT_READ/PROT_WRITE).
 * Returns the number of entries; -1 with errno ENOENT (unmapped) or EACCES;
 * or -(n + 1) with errno 0 when n entries would be needed.
 */
int vfu_addr_to_sgl(vfu_ctx_t *vfu_ctx, vfu_dma_addr_t dma_addr, size_t len, dma_sg_t *sgl,
                    size_t max_nr_sgs, int prot);

/*
 * Fills `iov` with this process's addresses of `cnt` entries (memory the
 * client shared with an fd). The entries stay pinned until vfu_sgl_put().
 * `flags` must be 0.
 */
int vfu_sgl_get(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt, int flags);

/* Marks `cnt` entries written (dirty-page logging). */
void vfu_sgl_mark_dirty(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, size_t cnt);

/* Releases entries taken with vfu_sgl_get(), marking written ones dirty. */
void vfu_sgl_put(vfu_ctx_t *vfu_ctx, dma_sg_t *sgl, struct iovec *iov, size_t cnt);

/*
 * Copies the bytes of `cnt` entries into `data` (or `data` into them),
 * through the mapping or, for memory shared without an fd, with DMA_READ /
 * DMA_WRITE messages. 0, or -1 with errno.
 */
int vfu_sgl_read(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t cnt, void *data);
int vfu_sgl_write(vfu_ctx_t *vfu_ctx, dma_sg_t *sg, size_t cnt, void *data);

/* PCI region indexes (VFIO's). */
enum {
    VFU_PCI_DEV_BAR0_REGION_IDX,
    VFU_PCI_DEV_BAR1_REGION_IDX,
    VFU_PCI_DEV_BAR2_REGION_IDX,
    VFU_PCI_DEV_BAR3_REGION_IDX,
    VFU_PCI_DEV_BAR4_REGION_IDX,
    VFU_PCI_DEV_BAR5_REGION_IDX,
    VFU_PCI_DEV_ROM_REGION_IDX,
    VFU_PCI_DEV_CFG_REGION_IDX,
    VFU_PCI_DEV_VGA_REGION_IDX,
    VFU_PCI_DEV_NUM_REGIONS,
};

typedef enum {
    VFU_PCI_TYPE_CONVENTIONAL,
    VFU_PCI_TYPE_PCI_X_1,
    VFU_PCI_TYPE_PCI_X_2,
    VFU_PCI_TYPE_EXPRESS
} vfu_pci_type_t;

/* Sets up config space for `pci_type` (256 or 4096 bytes). Once. */
int vfu_pci_init(vfu_ctx_t *vfu_ctx, vfu_pci_type_t pci_type, int hdr_type, int revision);

void vfu_pci_set_id(vfu_ctx_t *vfu_ctx, uint16_t vid, uint16_t did, uint16_t ssvid,
                    uint16_t ssid);

void vfu_pci_set_class(vfu_ctx_t *vfu_ctx, uint8_t base, uint8_t sub, uint8_t pi);

/* Config space, which the device may read and write directly. */
vfu_pci_config_space_t *vfu_pci_get_config_space(vfu_ctx_t *vfu_ctx);

#define VFU_CAP_FLAG_EXTENDED (1 << 0)
#define VFU_CAP_FLAG_CALLBACK (1 << 1)
#define VFU_CAP_FLAG_READONLY (1 << 2)

/*
 * Copies a capability (starting with its header, ID set) into config space
 * at `pos` (or a free place when 0) and links it into the list. Returns its
 * offset, or -1 with errno.
 */
ssize_t vfu_pci_add_capability(vfu_ctx_t *vfu_ctx, size_t pos, int flags, void *data);

/* Offset of the first capability `cap_id`, or 0 with errno ENOENT. */
size_t vfu_pci_find_capability(vfu_ctx_t *vfu_ctx, bool extended, int cap_id);

/* Offset of the next capability `cap_id` after the one at `pos`, or 0. */
size_t vfu_pci_find_next_capability(vfu_ctx_t *vfu_ctx, bool extended, size_t pos,
                                    int cap_id);

/* Whether the entry's memory is mapped into this process. */
bool vfu_sg_is_mappable(vfu_ctx_t *vfu_ctx, dma_sg_t *sg);

/*
 * Registers ioeventfd `fd` for writes of `size` bytes at `offset` of region
 * `region_idx` (matching `datamatch` when `flags` asks). `shadow_fd` must be
 * -1. The library owns `fd` from then on.
 */
int vfu_create_ioeventfd(vfu_ctx_t *vfu_ctx, uint32_t region_idx, int fd, size_t offset,
                         uint32_t size, uint32_t flags, uint64_t datamatch, int shadow_fd);

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_H */
