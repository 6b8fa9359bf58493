/*
 * The smallest device: config space and nothing else, like libvfio-user's
 * null sample. Useful to see the protocol alone.
 *
 *   null_server SOCKET [CLIENTS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvfio-user.h"
#include "sample_loop.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [CLIENTS]\n", argv[0]);
        return 2;
    }
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, argv[1], LIBVFIO_USER_FLAG_ATTACH_NB, NULL,
                                    VFU_DEV_TYPE_PCI);
    if (ctx == NULL || vfu_setup_log(ctx, sample_log, LOG_ERR) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) != 0 ||
        vfu_realize_ctx(ctx) != 0) {
        fprintf(stderr, "setup: %s\n", strerror(errno));
        return 1;
    }
    vfu_pci_set_id(ctx, 0xf00d, 0x0000, 0xf00d, 0x0000);
    printf("serving %s\n", argv[1]);
    fflush(stdout);
    int rc = sample_serve(ctx, argc > 2 ? atoi(argv[2]) : 0, NULL);
    vfu_destroy_ctx(ctx);
    return rc;
}
