// vfu-demo: serves the scratchpad device and drives it with the vfu client,
// printing each step: negotiation, device layout, region access, and a DMA
// the device performs through DMA_READ messages over the one socket.
//
//   bazel run //tools/demo
//   bazel run //tools/demo -- --socket=/tmp/scratchpad.sock --twin_socket
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "vfu/base/log.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"
#include "vfu/wire/capabilities.h"

ABSL_FLAG(std::string, socket, "", "socket path (default: a fresh temporary directory)");
ABSL_FLAG(bool, twin_socket, false, "ask for twin-socket mode");

namespace {

using vfu::devices::ScratchpadDevice;

void Say(const std::string& who, const std::string& what) {
  std::printf("%-7s %s\n", (who + ":").c_str(), what.c_str());
  std::fflush(stdout);
}

std::string Printable(const std::vector<uint8_t>& bytes) {
  return absl::StrCat("\"", absl::CEscape(std::string(bytes.begin(), bytes.end())), "\"");
}

absl::Status Run() {
  std::string path = absl::GetFlag(FLAGS_socket);
  std::string temp_dir;
  if (path.empty()) {
    char pattern[] = "/tmp/vfu-demo-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
    temp_dir = pattern;
    path = temp_dir + "/scratchpad.sock";
  }

  ScratchpadDevice device;
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<vfu::Server> server, vfu::Server::Create());
  VFU_RETURN_IF_ERROR(server->AddDevice(path, device));
  VFU_RETURN_IF_ERROR(server->Start());
  Say("server", absl::StrCat("serving the scratchpad device at ", path));

  vfu::ClientOptions options;
  options.twin_socket = absl::GetFlag(FLAGS_twin_socket);
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<vfu::Client> client, vfu::Client::Connect(path, options));
  const vfu::wire::Capabilities& caps = client->server_capabilities();
  Say("client", absl::StrCat("negotiated vfio-user 0.", client->server_minor_version(),
                             "; server capabilities: ",
                             vfu::wire::SerializeCapabilities(
                                 caps, vfu::wire::CapabilityMembers::All())));
  Say("client", client->twin_socket_active() ? "twin socket granted: server commands use it"
                                             : "single socket: server commands share it");

  VFU_ASSIGN_OR_RETURN(vfu::wire::DeviceInfo info, client->GetDeviceInfo());
  Say("client", absl::StrFormat("DEVICE_GET_INFO: flags 0x%x, %u regions, %u IRQ indexes",
                                info.flags, info.num_regions, info.num_irqs));
  for (uint32_t i = 0; i < info.num_regions; ++i) {
    VFU_ASSIGN_OR_RETURN(vfu::RegionInfo region, client->GetRegionInfo(i));
    if (region.info.size == 0) continue;
    Say("client", absl::StrFormat("  region %u: %u bytes, flags 0x%x", i, region.info.size,
                                  region.info.flags));
  }

  const std::string hello = "hello, vfio-user";
  VFU_RETURN_IF_ERROR(client->RegionWrite(0, 0x10, std::vector<uint8_t>(hello.begin(), hello.end())));
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> back, client->RegionRead(0, 0x10, hello.size()));
  Say("client", absl::StrCat("REGION_WRITE then REGION_READ of BAR0[0x10]: ", Printable(back)));

  std::string text = "copied by the device with DMA_READ messages";
  std::vector<uint8_t> guest(4096);
  std::memcpy(guest.data() + 0x200, text.data(), text.size());
  VFU_RETURN_IF_ERROR(client->DmaMapMemory(0x100000, absl::MakeSpan(guest)));
  Say("client", "registered 4 KiB of guest memory at IOVA 0x100000 (no fd: message DMA only)");

  auto write_u64 = [&](uint64_t offset, uint64_t value, size_t size) {
    std::vector<uint8_t> bytes(size);
    std::memcpy(bytes.data(), &value, size);
    return client->RegionWrite(0, offset, bytes);
  };
  VFU_RETURN_IF_ERROR(write_u64(ScratchpadDevice::kRegSource, 0x100200, 8));
  VFU_RETURN_IF_ERROR(write_u64(ScratchpadDevice::kRegLength, text.size(), 4));
  VFU_RETURN_IF_ERROR(write_u64(ScratchpadDevice::kRegDoorbell, 1, 4));
  Say("client", "rang the doorbell: copy IOVA 0x100200 -> BAR0[0]");
  uint32_t status = ScratchpadDevice::kBusy;
  while (status == ScratchpadDevice::kBusy) {
    VFU_RETURN_IF_ERROR(client->Poll(absl::Milliseconds(10)));  // serves DMA_READ
    VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> s,
                         client->RegionRead(0, ScratchpadDevice::kRegStatus, 4));
    std::memcpy(&status, s.data(), 4);
  }
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> copied, client->RegionRead(0, 0, text.size()));
  Say("client", absl::StrCat("device status ", status == ScratchpadDevice::kDone ? "done" : "FAILED",
                             "; BAR0[0]: ", Printable(copied)));

  vfu::ClientStats stats = client->stats();
  Say("client", absl::StrCat("sent ", stats.commands_sent, " commands, served ",
                             stats.server_commands_received, " server command(s), ",
                             stats.dma_read_bytes, " bytes by DMA_READ"));
  client.reset();
  server->Stop();
  Say("server", "stopped; socket removed");
  if (!temp_dir.empty()) ::rmdir(temp_dir.c_str());
  if (status != ScratchpadDevice::kDone || copied != std::vector<uint8_t>(text.begin(), text.end())) {
    return absl::InternalError("the device's copy does not match");
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Serves a sample vfio-user device and drives it with the vfu client.");
  absl::ParseCommandLine(argc, argv);
  vfu::SetMinLogLevel(vfu::LogLevel::kWarning);
  absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "vfu-demo: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
