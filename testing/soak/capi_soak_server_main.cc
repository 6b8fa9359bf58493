// capi_soak_server: the soak server (soak_server_main.cc) for the
// libvfio-user C API in poll mode. Device instances are C API contexts
// (capi_scratchpad.h, capi_gpio.h, capi_dma_engine.h: the sample devices'
// register files written against "libvfio-user.h" alone), and ONE thread serves them all
// as an SPDK-style event loop does: poll(2) on stdin and on every context's
// vfu_get_poll_fd(); vfu_attach_ctx() when a waiting context's listening
// socket is readable, vfu_run_ctx() when an attached one's poll fd is, and
// back to waiting for the next client after ENOTCONN. Every other quiesce
// is deferred and completed by the loop, as SPDK defers them.
//
//   capi_soak_server [--max_write_stall_ms=N] KIND:SOCKET_PATH [KIND:SOCKET_PATH...]
//
// KIND is scratchpad, gpio or dma_engine. --max_write_stall_ms is accepted for the
// runner's sake and unused: poll mode has no write-stall timer (a client
// that reads no replies stops being read once 16 MiB of them are queued;
// vfu/capi/README.md). The stdin protocol is soak_server's: "ready" once
// every context listens, then
//   measure  -> "fds=N rss_kb=N"   (after returning freed heap to the system)
//   stop     -> "stopped stop_us=N fds=N rss_kb=N", then exits 0
// where stop_us times destroying every context. End of input counts as
// "stop". The contexts' log lines go to stderr, at VFU_LOG_LEVEL.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libvfio-user.h"
#include "testing/soak/capi_dma_engine.h"
#include "testing/soak/capi_gpio.h"
#include "testing/soak/capi_scratchpad.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "devices/gpio/gpio_device.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "testing/soak/process_figures.h"

ABSL_FLAG(int, max_write_stall_ms, 2000,
          "accepted for soak_server compatibility; poll mode has no write-stall timer");

namespace vfu::soak {
namespace {

// The C devices' registers are the C++ devices' (the patterns use the
// latter's constants).
using devices::GpioDevice;
using devices::ScratchpadDevice;
static_assert(CAPI_SCRATCHPAD_BAR_SIZE == ScratchpadDevice::kBarSize);
static_assert(CAPI_SCRATCHPAD_REG_SOURCE == ScratchpadDevice::kRegSource);
static_assert(CAPI_SCRATCHPAD_REG_LENGTH == ScratchpadDevice::kRegLength);
static_assert(CAPI_SCRATCHPAD_REG_STATUS == ScratchpadDevice::kRegStatus);
static_assert(CAPI_SCRATCHPAD_REG_DOORBELL == ScratchpadDevice::kRegDoorbell);
static_assert(CAPI_SCRATCHPAD_SCRATCH_SIZE == ScratchpadDevice::kScratchSize);
static_assert(int{CAPI_SCRATCHPAD_BUSY} == int{ScratchpadDevice::kBusy} &&
              int{CAPI_SCRATCHPAD_DONE} == int{ScratchpadDevice::kDone} &&
              int{CAPI_SCRATCHPAD_FAILED} == int{ScratchpadDevice::kFailed});
static_assert(CAPI_GPIO_BAR_SIZE == GpioDevice::kBarSize);
static_assert(CAPI_GPIO_REG_ID == GpioDevice::kRegId && CAPI_GPIO_REG_INFO == GpioDevice::kRegInfo &&
              CAPI_GPIO_REG_INPUT == GpioDevice::kRegInput &&
              CAPI_GPIO_REG_OUTPUT == GpioDevice::kRegOutput &&
              CAPI_GPIO_REG_DIRECTION == GpioDevice::kRegDirection &&
              CAPI_GPIO_REG_IRQ_ENABLE == GpioDevice::kRegIrqEnable &&
              CAPI_GPIO_REG_IRQ_STATUS == GpioDevice::kRegIrqStatus &&
              CAPI_GPIO_REG_CONTROL == GpioDevice::kRegControl);
static_assert(CAPI_GPIO_ID_VALUE == GpioDevice::kIdValue &&
              CAPI_GPIO_INFO_VALUE == GpioDevice::kInfoValue &&
              CAPI_GPIO_CONTROL_LOOPBACK == GpioDevice::kControlLoopback);
namespace de = devices::dma_engine;
static_assert(CAPI_DMA_ENGINE_CHANNELS == de::kNumChannels &&
              CAPI_DMA_ENGINE_CHUNK == de::kChunkSize && CAPI_DMA_ENGINE_BAR_SIZE == de::kBarSize);
static_assert(CAPI_DMA_ENGINE_REG_ID == de::kRegId && CAPI_DMA_ENGINE_REG_VERSION == de::kRegVersion &&
              CAPI_DMA_ENGINE_REG_CHANNELS == de::kRegChannels &&
              CAPI_DMA_ENGINE_REG_IRQ_STATUS == de::kRegIrqStatus &&
              CAPI_DMA_ENGINE_CHANNEL_BASE == de::kChannelBase &&
              CAPI_DMA_ENGINE_CHANNEL_STRIDE == de::kChannelStride);
static_assert(CAPI_DMA_ENGINE_REG_SOURCE_LO == de::kRegSourceLo &&
              CAPI_DMA_ENGINE_REG_SOURCE_HI == de::kRegSourceHi &&
              CAPI_DMA_ENGINE_REG_DESTINATION_LO == de::kRegDestinationLo &&
              CAPI_DMA_ENGINE_REG_DESTINATION_HI == de::kRegDestinationHi &&
              CAPI_DMA_ENGINE_REG_LENGTH == de::kRegLength &&
              CAPI_DMA_ENGINE_REG_DOORBELL == de::kRegDoorbell &&
              CAPI_DMA_ENGINE_REG_STATUS == de::kRegStatus &&
              CAPI_DMA_ENGINE_REG_ERROR == de::kRegError &&
              CAPI_DMA_ENGINE_REG_PROGRESS == de::kRegProgress);
static_assert(CAPI_DMA_ENGINE_ID_VALUE == de::kIdValue && de::kRegisterRevision == 1 &&
              CAPI_DMA_ENGINE_DOORBELL_START == de::kDoorbellStart &&
              CAPI_DMA_ENGINE_DOORBELL_ABORT == de::kDoorbellAbort);
static_assert(CAPI_DMA_ENGINE_BUSY == de::kStatusBusy && CAPI_DMA_ENGINE_DONE == de::kStatusDone &&
              CAPI_DMA_ENGINE_ERROR == de::kStatusError);
static_assert(CAPI_DMA_ENGINE_ERROR_SOURCE_FAULT == de::kErrorSourceFault &&
              CAPI_DMA_ENGINE_ERROR_DESTINATION_FAULT == de::kErrorDestinationFault &&
              CAPI_DMA_ENGINE_ERROR_ABORTED == de::kErrorAborted &&
              CAPI_DMA_ENGINE_ERROR_DETACHED == de::kErrorDetached &&
              CAPI_DMA_ENGINE_ERROR_INVALID == de::kErrorInvalid);
static_assert(GpioDevice::kVendorId == 0xf00d && GpioDevice::kDeviceId == 0x0001 &&
              GpioDevice::kClassCode == 0x088000);

// One device instance: its context, and whether a client is attached.
struct Slot {
  std::string path;
  vfu_ctx_t* ctx = nullptr;
  void (*destroy)(vfu_ctx_t*) = nullptr;
  bool attached = false;
  // Quiesces asked, and whether the last one was deferred (see Quiesce).
  uint64_t quiesces = 0;
  bool quiesce_deferred = false;
};

// Every slot, for the quiesce callback, which gets only the context. Set
// once by Main before any context is served; the loop's thread only.
std::vector<Slot>* all_slots = nullptr;

// The quiesce callback (DMA_MAP, DMA_UNMAP, DEVICE_RESET...). SPDK defers
// it until its poll groups have paused; this loop defers every other one
// (-1/EBUSY), and Serve() completes it with vfu_device_quiesced() after the
// vfu_run_ctx() that asked, so both paths of the library run under the
// patterns.
int Quiesce(vfu_ctx_t* ctx) {
  for (Slot& slot : *all_slots) {
    if (slot.ctx != ctx || (++slot.quiesces & 1) == 0) continue;
    slot.quiesce_deferred = true;
    errno = EBUSY;
    return -1;
  }
  return 0;
}

void LogToStderr(vfu_ctx_t* ctx, int level, const char* message) {
  (void)ctx;
  std::fprintf(stderr, "capi_soak_server[%d]: %s\n", level, message);
}

// VFU_LOG_LEVEL (error, warning, info, debug) as a syslog level.
int SyslogLevelFromEnvironment() {
  const char* value = std::getenv("VFU_LOG_LEVEL");
  const std::string_view level = value == nullptr ? "warning" : value;
  if (level == "debug") return LOG_DEBUG;
  if (level == "info") return LOG_INFO;
  if (level == "error") return LOG_ERR;
  return LOG_WARNING;
}

std::string FiguresLine() {
  ::malloc_trim(0);
  const ProcessFigures figures = MeasureProcess(::getpid());
  return absl::StrCat("fds=", figures.fds, " rss_kb=", figures.rss_kb);
}

// Serves the slot whose poll fd is ready. Returns false on an error the
// loop cannot recover from.
bool Serve(Slot& slot) {
  if (!slot.attached) {
    if (vfu_attach_ctx(slot.ctx) == 0) {
      slot.attached = true;
      return true;
    }
    // EAGAIN: the client that made the socket readable gave up already.
    // Others (ECONNABORTED, EMFILE...): that client is lost, the context
    // keeps listening.
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      std::fprintf(stderr, "capi_soak_server: %s: vfu_attach_ctx: %s\n", slot.path.c_str(),
                   std::strerror(errno));
    }
    return true;
  }
  const int handled = vfu_run_ctx(slot.ctx);
  const int run_errno = errno;
  // Completing one may run kept commands whose quiesce is deferred again.
  while (slot.quiesce_deferred) {
    slot.quiesce_deferred = false;
    if (vfu_device_quiesced(slot.ctx, 0) != 0) {
      std::fprintf(stderr, "capi_soak_server: %s: vfu_device_quiesced: %s\n", slot.path.c_str(),
                   std::strerror(errno));
      return false;
    }
  }
  if (handled >= 0) return true;
  switch (run_errno) {
    case ENOTCONN:
      slot.attached = false;  // its poll fd is the listening socket again
      return true;
    case EAGAIN:
    case EBUSY:  // a quiesce deferred, completed above
      return true;
    default:
      std::fprintf(stderr, "capi_soak_server: %s: vfu_run_ctx: %s\n", slot.path.c_str(),
                   std::strerror(run_errno));
      return false;
  }
}

// Commands from stdin, which is non-blocking: Read() takes what has
// arrived, NextLine() hands out the complete lines.
class CommandReader {
 public:
  // Reads what stdin holds (it is non-blocking). False at end of input.
  bool Read() {
    char buffer[256];
    for (;;) {
      const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n > 0) {
        pending_.append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  // The next complete line, if any.
  bool NextLine(std::string& line) {
    const size_t end = pending_.find('\n');
    if (end == std::string::npos) return false;
    line = pending_.substr(0, end);
    pending_.erase(0, end + 1);
    return true;
  }

 private:
  std::string pending_;
};

int Main(const std::vector<char*>& args) {
  const int log_level = SyslogLevelFromEnvironment();
  std::vector<Slot> slots;
  all_slots = &slots;
  auto destroy_all = [&slots] {
    for (Slot& slot : slots) slot.destroy(slot.ctx);
    slots.clear();
  };
  for (size_t i = 1; i < args.size(); ++i) {
    std::vector<std::string> parts = absl::StrSplit(args[i], absl::MaxSplits(':', 1));
    Slot slot;
    if (parts.size() == 2 && parts[0] == "scratchpad") {
      slot.ctx = capi_scratchpad_create(parts[1].c_str(), LogToStderr, log_level);
      slot.destroy = capi_scratchpad_destroy;
    } else if (parts.size() == 2 && parts[0] == "dma_engine") {
      slot.ctx = capi_dma_engine_create(parts[1].c_str(), LogToStderr, log_level);
      slot.destroy = capi_dma_engine_destroy;
    } else if (parts.size() == 2 && parts[0] == "gpio") {
      slot.ctx = capi_gpio_create(parts[1].c_str(), LogToStderr, log_level);
      slot.destroy = capi_gpio_destroy;
    } else {
      std::cerr << "capi_soak_server: expected KIND:PATH (scratchpad, gpio, dma_engine), got " << args[i]
                << "\n";
      destroy_all();
      return 2;
    }
    if (slot.ctx == nullptr) {
      std::cerr << "capi_soak_server: " << parts[1] << ": " << std::strerror(errno) << "\n";
      destroy_all();
      return 1;
    }
    slot.path = parts[1];
    vfu_setup_device_quiesce_cb(slot.ctx, Quiesce);
    slots.push_back(std::move(slot));
  }
  if (::fcntl(STDIN_FILENO, F_SETFL, ::fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK) != 0) {
    std::cerr << "capi_soak_server: stdin: " << std::strerror(errno) << "\n";
    destroy_all();
    return 1;
  }
  std::cout << "ready" << std::endl;

  CommandReader commands;
  std::vector<pollfd> fds;
  bool stopping = false;
  int status = 0;
  while (!stopping) {
    // The poll fds change with attach and ENOTCONN: asked for each round.
    fds.clear();
    fds.push_back({.fd = STDIN_FILENO, .events = POLLIN, .revents = 0});
    for (const Slot& slot : slots) {
      fds.push_back({.fd = vfu_get_poll_fd(slot.ctx), .events = POLLIN, .revents = 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::cerr << "capi_soak_server: poll: " << std::strerror(errno) << "\n";
      status = 1;
      break;
    }
    for (size_t i = 0; i < slots.size(); ++i) {
      if (fds[i + 1].revents != 0 && !Serve(slots[i])) {
        status = 1;
        stopping = true;
      }
    }
    if (fds[0].revents != 0) {
      const bool open = commands.Read();
      std::string line;
      while (!stopping && commands.NextLine(line)) {
        if (line == "stop") {
          stopping = true;
        } else if (line == "measure") {
          std::cout << FiguresLine() << std::endl;
        } else {
          std::cout << "unknown command" << std::endl;
        }
      }
      if (!open) stopping = true;  // end of input counts as "stop"
    }
  }
  const absl::Time start = absl::Now();
  destroy_all();
  const int64_t stop_us = absl::ToInt64Microseconds(absl::Now() - start);
  std::cout << "stopped stop_us=" << stop_us << " " << FiguresLine() << std::endl;
  return status;
}

}  // namespace
}  // namespace vfu::soak

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return vfu::soak::Main(args);
}
