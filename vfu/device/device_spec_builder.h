// Device specs as data: turns a vfu.proto.DeviceSpec (proto/device_spec.proto)
// into a PciDeviceSpec, or straight into a served device with no behaviour of
// its own.
//
//   VFU_ASSIGN_OR_RETURN(proto::DeviceSpec text_spec, ParseDeviceSpecText(R"pb(
//     identity { vendor_id: 0x1af4 device_id: 0x1000 class_code: 0x020000 }
//     regions { index: 0 size: 4096 readable: true writable: true }
//     interrupts { intx: true msi_vectors: 1 }
//   )pb"));
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<PciDevice> device, DeviceFromProto(text_spec));
//   server->AddDevice("/run/stub.sock", *device);
//
// Such a device has shared memory behind every region (RegionSpec::
// backed_by_memory), so reads return what was last written, and the
// framework's config space, capabilities and interrupt state. Control planes
// use it to stand up placeholder devices, and device authors to check a
// layout before writing behaviour.
//
// Every function here is pure apart from the device it builds; thread-safe.
#ifndef VFU_DEVICE_DEVICE_SPEC_BUILDER_H_
#define VFU_DEVICE_DEVICE_SPEC_BUILDER_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/device_spec.pb.h"
#include "vfu/device/pci_device.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu {

// Converts `spec`, checking what the proto's types cannot express, each as
// InvalidArgument naming the field:
//  - identity: 16-bit IDs, 24-bit class code, 8-bit revision; vendor 0xffff
//    (reads as "no device");
//  - regions: index 0-5 (BARs), 6 (ROM) or >= 9 (device-specific, numbered
//    9, 10, ... without gaps); 7 and 8 are the framework's; no index twice;
//    a non-zero size; kind and prefetchable only on BARs; no 64-bit BAR in
//    slot 5 or described together with its upper slot; a read-only ROM;
//    type and subtype only on device-specific regions, which need a type;
//  - interrupts: MSI vectors 0 or a power of two up to 32, MSI-X vectors
//    up to 2048 in BAR 0-5;
//  - capabilities: vendor payloads that fit, 16-bit VSEC IDs, 4-bit VSEC
//    revisions; extended capabilities and the serial number need express.
// What PciDevice checks when it builds the device (BAR sizes, mmap areas,
// the MSI-X table inside its BAR, capabilities fitting in config space) is
// left to it: see DeviceFromProto. Every region gets backed_by_memory.
absl::StatusOr<PciDeviceSpec> PciDeviceSpecFromProto(const proto::DeviceSpec& spec);

// PciDeviceSpecFromProto, then a PciDevice with no behaviour beyond the
// framework's; the device's own validation (PciDevice::Validate) as its
// status if the layout does not hold together.
absl::StatusOr<std::unique_ptr<PciDevice>> DeviceFromProto(const proto::DeviceSpec& spec);

// Parses a DeviceSpec in protobuf text format. InvalidArgument carrying the
// parser's line:column and message on a syntax error or an unknown field.
absl::StatusOr<proto::DeviceSpec> ParseDeviceSpecText(std::string_view text);

}  // namespace vfu

#endif  // VFU_DEVICE_DEVICE_SPEC_BUILDER_H_
