#include "vfu/dma/dma_fault.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace vfu {
namespace {

constexpr std::string_view kDmaFaultPayload = "vfu/dma-fault";

}  // namespace

absl::Status DmaFaultError(std::string_view what, uint64_t iova, uint64_t length) {
  absl::Status status = absl::DataLossError(
      absl::StrCat(what, " of [0x", absl::Hex(iova), ", +0x", absl::Hex(length),
                   ") faulted: the client's memory is gone (file shrunk under its mapping)"));
  status.SetPayload(kDmaFaultPayload, absl::Cord());
  return status;
}

bool IsDmaFault(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDataLoss &&
         status.GetPayload(kDmaFaultPayload).has_value();
}

}  // namespace vfu
