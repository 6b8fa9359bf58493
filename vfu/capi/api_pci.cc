// PCI config space and capabilities.
#include <cerrno>
#include <memory>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/context.h"

using vfu::capi::FailWith;
using vfu::capi::FailWithErrno;

namespace {

vfu_pci_config_space_t* Header(vfu_ctx_t* ctx) {
  if (ctx == nullptr || ctx->config == nullptr) return nullptr;
  return reinterpret_cast<vfu_pci_config_space_t*>(ctx->config->data());
}

}  // namespace

extern "C" {

int vfu_pci_init(vfu_ctx_t* vfu_ctx, vfu_pci_type_t pci_type, int hdr_type, int revision) {
  if (vfu_ctx == nullptr || vfu_ctx->realized) return FailWithErrno(EINVAL);
  if (vfu_ctx->config != nullptr) return FailWithErrno(EEXIST);
  if (hdr_type != PCI_HEADER_TYPE_NORMAL || revision < 0 || revision > 0xff) {
    return FailWithErrno(EINVAL);
  }
  size_t size;
  switch (pci_type) {
    case VFU_PCI_TYPE_CONVENTIONAL:
    case VFU_PCI_TYPE_PCI_X_1:
      size = PCI_CFG_SPACE_SIZE;
      break;
    case VFU_PCI_TYPE_PCI_X_2:
    case VFU_PCI_TYPE_EXPRESS:
      size = PCI_CFG_SPACE_EXP_SIZE;
      break;
    default:
      return FailWithErrno(EINVAL);
  }
  vfu_ctx->config = std::make_unique<vfu::capi::ConfigSpace>(size);
  vfu_pci_config_space_t* config = Header(vfu_ctx);
  config->hdr.htype.raw = static_cast<uint8_t>(hdr_type);
  config->hdr.rid = static_cast<uint8_t>(revision);
  return 0;
}

void vfu_pci_set_id(vfu_ctx_t* vfu_ctx, uint16_t vid, uint16_t did, uint16_t ssvid,
                    uint16_t ssid) {
  vfu_pci_config_space_t* config = Header(vfu_ctx);
  if (config == nullptr) return;
  config->hdr.id.vid = vid;
  config->hdr.id.did = did;
  config->hdr.ss.vid = ssvid;
  config->hdr.ss.sid = ssid;
}

void vfu_pci_set_class(vfu_ctx_t* vfu_ctx, uint8_t base, uint8_t sub, uint8_t pi) {
  vfu_pci_config_space_t* config = Header(vfu_ctx);
  if (config == nullptr) return;
  config->hdr.cc.bcc = base;
  config->hdr.cc.scc = sub;
  config->hdr.cc.pi = pi;
}

vfu_pci_config_space_t* vfu_pci_get_config_space(vfu_ctx_t* vfu_ctx) { return Header(vfu_ctx); }

ssize_t vfu_pci_add_capability(vfu_ctx_t* vfu_ctx, size_t pos, int flags, void* data) {
  if (vfu_ctx == nullptr || vfu_ctx->config == nullptr || vfu_ctx->realized) {
    return FailWithErrno(EINVAL);
  }
  absl::StatusOr<size_t> offset =
      vfu_ctx->config->AddCapability(pos, flags, static_cast<const uint8_t*>(data));
  if (!offset.ok()) return FailWith(offset.status());
  return static_cast<ssize_t>(*offset);
}

size_t vfu_pci_find_capability(vfu_ctx_t* vfu_ctx, bool extended, int cap_id) {
  if (vfu_ctx == nullptr || vfu_ctx->config == nullptr) {
    errno = EINVAL;
    return 0;
  }
  const size_t offset = vfu_ctx->config->FindCapability(extended, cap_id);
  if (offset == 0) errno = ENOENT;
  return offset;
}

size_t vfu_pci_find_next_capability(vfu_ctx_t* vfu_ctx, bool extended, size_t pos, int cap_id) {
  if (vfu_ctx == nullptr || vfu_ctx->config == nullptr) {
    errno = EINVAL;
    return 0;
  }
  const size_t offset = vfu_ctx->config->FindNextCapability(extended, pos, cap_id);
  if (offset == 0) errno = ENOENT;
  return offset;
}

}  // extern "C"
