/*
 * A 16-line GPIO card in the style of libvfio-user's gpio sample: PCI
 * identity of an ACCES IDIO-16 style card and an IO BAR 2 whose first two
 * bytes read the input lines. Here the lines count up: each read of byte 0
 * returns one more than the last, so a client can watch them change.
 *
 *   gpio_server SOCKET [CLIENTS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvfio-user.h"
#include "sample_loop.h"

#define GPIO_BAR_SIZE 256

static uint16_t lines;

static ssize_t gpio_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    if (is_write) {
        return (ssize_t)count; /* the inputs ignore writes */
    }
    memset(buf, 0, count);
    if (offset == 0 && count >= 1) {
        lines++;
        memcpy(buf, &lines, count >= 2 ? 2 : 1);
    }
    return (ssize_t)count;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [CLIENTS]\n", argv[0]);
        return 2;
    }
    int clients = argc > 2 ? atoi(argv[2]) : 0;
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, argv[1], LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                                    VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        fprintf(stderr, "vfu_create_ctx: %s\n", strerror(errno));
        return 1;
    }
    if (vfu_setup_log(ctx, sample_log, LOG_ERR) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) != 0) {
        fprintf(stderr, "setup: %s\n", strerror(errno));
        return 1;
    }
    vfu_pci_set_id(ctx, 0x494f, 0x0dc8, 0x0, 0x0);
    vfu_pci_set_class(ctx, 0x08, 0x80, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR2_REGION_IDX, GPIO_BAR_SIZE, gpio_access,
                         VFU_REGION_FLAG_RW, NULL, 0, -1, 0) != 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) != 0 || vfu_realize_ctx(ctx) != 0) {
        fprintf(stderr, "setup: %s\n", strerror(errno));
        return 1;
    }
    printf("serving %s\n", argv[1]);
    fflush(stdout);
    int rc = sample_serve(ctx, clients, NULL);
    vfu_destroy_ctx(ctx);
    return rc;
}
