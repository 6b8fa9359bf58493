/*
 * Existing libvfio-user programs build unchanged: every exported function,
 * assigned to a pointer of libvfio-user's exact prototype (a mismatch is a
 * compile error under -Werror), then called through it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "pci_caps/common.h"
#include "pci_caps/dsn.h"
#include "pci_caps/msi.h"
#include "pci_caps/msix.h"
#include "pci_caps/pm.h"
#include "pci_caps/px.h"
#include "pci_defs.h"

static size_t (*p_dma_sg_size)(void) = dma_sg_size;
static vfu_ctx_t *(*p_create)(vfu_trans_t, const char *, int, void *, vfu_dev_type_t) =
    vfu_create_ctx;
static int (*p_realize)(vfu_ctx_t *) = vfu_realize_ctx;
static int (*p_attach)(vfu_ctx_t *) = vfu_attach_ctx;
static int (*p_poll_fd)(vfu_ctx_t *) = vfu_get_poll_fd;
static int (*p_run)(vfu_ctx_t *) = vfu_run_ctx;
static void (*p_destroy)(vfu_ctx_t *) = vfu_destroy_ctx;
static void *(*p_private)(vfu_ctx_t *) = vfu_get_private;
static void (*p_log)(vfu_ctx_t *, int, const char *, ...) = vfu_log;
static int (*p_setup_log)(vfu_ctx_t *, vfu_log_fn_t *, int) = vfu_setup_log;
static int (*p_setup_region)(vfu_ctx_t *, int, size_t, vfu_region_access_cb_t *, int,
                             struct iovec *, uint32_t, int, uint64_t) = vfu_setup_region;
static void (*p_quiesce_cb)(vfu_ctx_t *, vfu_device_quiesce_cb_t *) = vfu_setup_device_quiesce_cb;
static int (*p_quiesced)(vfu_ctx_t *, int) = vfu_device_quiesced;
static int (*p_reset_cb)(vfu_ctx_t *, vfu_reset_cb_t *) = vfu_setup_device_reset_cb;
static int (*p_dma)(vfu_ctx_t *, vfu_dma_register_cb_t *, vfu_dma_unregister_cb_t *) =
    vfu_setup_device_dma;
static int (*p_nr_irqs)(vfu_ctx_t *, enum vfu_dev_irq_type, uint32_t) = vfu_setup_device_nr_irqs;
static int (*p_irq_state)(vfu_ctx_t *, enum vfu_dev_irq_type, vfu_dev_irq_state_cb_t *) =
    vfu_setup_irq_state_callback;
static int (*p_migration)(vfu_ctx_t *, uint64_t, const vfu_migration_callbacks_t *) =
    vfu_setup_device_migration_callbacks;
static int (*p_trigger)(vfu_ctx_t *, uint32_t) = vfu_irq_trigger;
static int (*p_addr_to_sgl)(vfu_ctx_t *, vfu_dma_addr_t, size_t, dma_sg_t *, size_t, int) =
    vfu_addr_to_sgl;
static int (*p_sgl_get)(vfu_ctx_t *, dma_sg_t *, struct iovec *, size_t, int) = vfu_sgl_get;
static void (*p_sgl_mark_dirty)(vfu_ctx_t *, dma_sg_t *, size_t) = vfu_sgl_mark_dirty;
static void (*p_sgl_put)(vfu_ctx_t *, dma_sg_t *, struct iovec *, size_t) = vfu_sgl_put;
static int (*p_sgl_read)(vfu_ctx_t *, dma_sg_t *, size_t, void *) = vfu_sgl_read;
static int (*p_sgl_write)(vfu_ctx_t *, dma_sg_t *, size_t, void *) = vfu_sgl_write;
static int (*p_pci_init)(vfu_ctx_t *, vfu_pci_type_t, int, int) = vfu_pci_init;
static void (*p_set_id)(vfu_ctx_t *, uint16_t, uint16_t, uint16_t, uint16_t) = vfu_pci_set_id;
static void (*p_set_class)(vfu_ctx_t *, uint8_t, uint8_t, uint8_t) = vfu_pci_set_class;
static vfu_pci_config_space_t *(*p_config)(vfu_ctx_t *) = vfu_pci_get_config_space;
static ssize_t (*p_add_cap)(vfu_ctx_t *, size_t, int, void *) = vfu_pci_add_capability;
static size_t (*p_find_cap)(vfu_ctx_t *, bool, int) = vfu_pci_find_capability;
static size_t (*p_find_next_cap)(vfu_ctx_t *, bool, size_t, int) = vfu_pci_find_next_capability;
static bool (*p_mappable)(vfu_ctx_t *, dma_sg_t *) = vfu_sg_is_mappable;
static int (*p_ioeventfd)(vfu_ctx_t *, uint32_t, int, size_t, uint32_t, uint32_t, uint64_t, int) =
    vfu_create_ioeventfd;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: %s failed (errno %d)\n", __FILE__, __LINE__, \
                    #cond, errno);                                              \
            return 1;                                                           \
        }                                                                       \
    } while (0)

static int logged;
static void log_fn(vfu_ctx_t *ctx, int level, const char *msg) {
    logged += strcmp(msg, "hello 42") == 0 && level == LOG_INFO;
}
static ssize_t access_cb(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write) {
    return (ssize_t)count;
}
static int quiesce(vfu_ctx_t *ctx) { return 0; }
static int reset(vfu_ctx_t *ctx, vfu_reset_type_t type) { return 0; }
static void reg(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}
static void unreg(vfu_ctx_t *ctx, vfu_dma_info_t *info) {}
static void irq_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask) {}
static int transition(vfu_ctx_t *ctx, vfu_migr_state_t state) { return 0; }
static ssize_t read_data(vfu_ctx_t *ctx, void *buf, uint64_t count) { return 0; }
static ssize_t write_data(vfu_ctx_t *ctx, void *buf, uint64_t count) { return 0; }

int main(void) {
    char path[] = "/tmp/vfu-abi-XXXXXX";
    CHECK(mkdtemp(path) != NULL);
    char sock[64];
    snprintf(sock, sizeof(sock), "%s/s", path);
    int pvt;
    vfu_ctx_t *ctx = p_create(VFU_TRANS_SOCK, sock, LIBVFIO_USER_FLAG_ATTACH_NB, &pvt,
                              VFU_DEV_TYPE_PCI);
    CHECK(ctx != NULL && p_private(ctx) == &pvt);
    CHECK(p_setup_log(ctx, log_fn, LOG_DEBUG) == 0);
    p_log(ctx, LOG_INFO, "hello %d", 42);
    CHECK(logged == 1);
    CHECK(p_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 1) == 0);
    p_set_id(ctx, 1, 2, 3, 4);
    p_set_class(ctx, 5, 6, 7);
    CHECK(p_config(ctx)->hdr.id.vid == 1 && p_config(ctx)->hdr.cc.bcc == 5);
    struct pmcap pm = {.hdr = {.id = PCI_CAP_ID_PM}};
    CHECK(p_add_cap(ctx, 0, 0, &pm) == 0x40);
    CHECK(p_find_cap(ctx, false, PCI_CAP_ID_PM) == 0x40);
    CHECK(p_find_next_cap(ctx, false, 0x40, PCI_CAP_ID_PM) == 0);
    CHECK(p_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, 0x100, access_cb, VFU_REGION_FLAG_RW,
                         NULL, 0, -1, 0) == 0);
    p_quiesce_cb(ctx, quiesce);
    CHECK(p_reset_cb(ctx, reset) == 0);
    CHECK(p_dma(ctx, reg, unreg) == 0);
    CHECK(p_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) == 0);
    CHECK(p_irq_state(ctx, VFU_DEV_INTX_IRQ, irq_state) == 0);
    vfu_migration_callbacks_t migration = {VFU_MIGR_CALLBACKS_VERS, transition, read_data,
                                           write_data};
    errno = 0;
    int migration_result = p_migration(ctx, 0, &migration);
    CHECK(migration_result == 0 || errno == ENOTSUP);
    CHECK(p_ioeventfd(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, dup(0), 0, 4, 0, 0, -1) == 0);
    CHECK(p_realize(ctx) == 0);
    CHECK(p_poll_fd(ctx) >= 0);
    errno = 0;
    CHECK(p_attach(ctx) == -1 && errno == EAGAIN);
    errno = 0;
    CHECK(p_run(ctx) == -1 && errno == ENOTCONN);
    errno = 0;
    CHECK(p_quiesced(ctx, 0) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(p_trigger(ctx, 0) == -1 && errno == ENOENT);
    CHECK(p_dma_sg_size() == 40);
    dma_sg_t *sg = calloc(1, p_dma_sg_size());
    errno = 0;
    CHECK(p_addr_to_sgl(ctx, (vfu_dma_addr_t)0x1000, 16, sg, 1, PROT_READ) == -1 &&
          errno == ENOENT);
    struct iovec iov;
    CHECK(p_sgl_get(ctx, sg, &iov, 0, 0) == 0);
    p_sgl_mark_dirty(ctx, sg, 0);
    p_sgl_put(ctx, sg, &iov, 0);
    char byte;
    CHECK(p_sgl_read(ctx, sg, 0, &byte) == 0);
    CHECK(p_sgl_write(ctx, sg, 0, &byte) == 0);
    CHECK(!p_mappable(ctx, sg));
    free(sg);
    p_destroy(ctx);
    CHECK(rmdir(path) == 0);
    return 0;
}
