// SpecFromDevice: a probed device as a vfu.proto.DeviceSpec, the data form
// from which vfu builds a device (vfu/device/device_spec_builder.h). For a
// device vfu built from a spec, the result is that spec again (apart from
// `name`); for any other device it is the closest spec, with a note for
// each feature the proto cannot say (the notes go out as comments).
#ifndef VFU_TOOLS_INSPECT_SPEC_FROM_DEVICE_H_
#define VFU_TOOLS_INSPECT_SPEC_FROM_DEVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/device_spec.pb.h"
#include "tools/inspect/device_snapshot.h"

namespace vfu::inspect {

struct SpecResult {
  proto::DeviceSpec spec;
  // What the device has that the spec leaves out or approximates.
  std::vector<std::string> notes;
};

// Derives the spec: identity from config space; regions 0-6 and >= 9 that
// are implemented (size, access, BAR kind from config space, mmap areas
// from the sparse-mmap capability or the whole region when mappable without
// one, region type); interrupts from IRQ info and the MSI / MSI-X
// capabilities (table and PBA placement); power management, vendor
// capabilities, serial number and vendor extended capabilities from the
// capability chains. `name` is the socket file's name without extension.
// FailedPrecondition when config space could not be read or decoded.
absl::StatusOr<SpecResult> SpecFromDevice(const DeviceSnapshot& device);

// The spec in protobuf text format, after a comment naming the socket and
// one comment line per note.
std::string FormatSpecText(const DeviceSnapshot& device, const SpecResult& result);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_SPEC_FROM_DEVICE_H_
