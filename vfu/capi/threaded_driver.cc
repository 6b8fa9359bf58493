#include "vfu/capi/threaded_driver.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "vfu/wire/errno_status.h"

namespace vfu::capi {
namespace {

absl::Status NoClient() { return absl::UnavailableError("no client attached"); }

int Fail(int error) {
  errno = error;
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ThreadedDriver>> ThreadedDriver::Create(vfu_ctx& ctx) {
  UniqueFd event_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_fd) return wire::WireError(errno, "eventfd");
  return std::unique_ptr<ThreadedDriver>(new ThreadedDriver(ctx, std::move(event_fd)));
}

ThreadedDriver::ThreadedDriver(vfu_ctx& ctx, UniqueFd event_fd)
    : ctx_(ctx), event_fd_(std::move(event_fd)) {}

ThreadedDriver::~ThreadedDriver() {
  if (server_ != nullptr) server_->Stop();
  server_.reset();
}

absl::Status ThreadedDriver::Realize() {
  device_ = std::make_unique<CallbackDevice>(
      ctx_,
      [this](uint64_t iova, uint64_t length, DmaDirection direction) {
        return Translate(iova, length, direction);
      },
      CallbackDevice::AttachHooks{
          .attached = [this](std::shared_ptr<DeviceContext> context) {
            OnAttached(std::move(context));
          },
          .detached = [this] { OnDetached(); }},
      CallbackDevice::QuiesceBy::kEngine);
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create();
  if (!server.ok()) return server.status();
  absl::Status status = (*server)->AddDevice(ctx_.path, *device_);
  if (status.ok()) status = (*server)->Start();
  if (!status.ok()) return status;
  server_ = std::move(*server);
  return absl::OkStatus();
}

void ThreadedDriver::OnAttached(std::shared_ptr<DeviceContext> context) {
  absl::MutexLock lock(&mu_);
  context_ = std::move(context);
  ++attached_;
  UpdateEventFdLocked();
}

void ThreadedDriver::OnDetached() {
  // On the worker, as every callback in this mode; before the caller hears
  // of it, as libvfio-user calls it before vfu_run_ctx() reports ENOTCONN.
  if (ctx_.reset != nullptr) ctx_.reset(&ctx_, VFU_RESET_LOST_CONN);
  absl::MutexLock lock(&mu_);
  context_.reset();
  ++detached_;
  UpdateEventFdLocked();
}

void ThreadedDriver::UpdateEventFdLocked() {
  const bool pending = attached_ > attaches_reported_ || detached_ > detaches_reported_;
  if (pending == event_signalled_) return;
  uint64_t value = 1;
  if (pending) {
    (void)!write(event_fd_.get(), &value, sizeof(value));
  } else {
    (void)!read(event_fd_.get(), &value, sizeof(value));
  }
  event_signalled_ = pending;
}

int ThreadedDriver::Attach() {
  if (server_ == nullptr) return Fail(EINVAL);
  const bool nonblocking = (ctx_.flags & LIBVFIO_USER_FLAG_ATTACH_NB) != 0;
  absl::MutexLock lock(&mu_);
  auto arrived = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return attached_ > attaches_reported_;
  };
  if (nonblocking && !arrived()) return Fail(EAGAIN);
  mu_.Await(absl::Condition(&arrived));
  ++attaches_reported_;
  UpdateEventFdLocked();
  return 0;
}

int ThreadedDriver::Run() {
  if (server_ == nullptr) return Fail(EINVAL);
  const bool nonblocking = (ctx_.flags & LIBVFIO_USER_FLAG_ATTACH_NB) != 0;
  absl::MutexLock lock(&mu_);
  // No client handed out by vfu_attach_ctx() is still being served.
  if (attaches_reported_ == detaches_reported_) return Fail(ENOTCONN);
  auto left = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return detached_ > detaches_reported_;
  };
  if (nonblocking && !left()) return 0;
  mu_.Await(absl::Condition(&left));
  ++detaches_reported_;
  UpdateEventFdLocked();
  return Fail(ENOTCONN);
}

int ThreadedDriver::QuiesceDone(int quiesce_errno) {
  if (device_ == nullptr) return Fail(EINVAL);
  return device_->CompleteQuiesce(quiesce_errno);
}

std::shared_ptr<DeviceContext> ThreadedDriver::context() {
  absl::MutexLock lock(&mu_);
  return context_;
}

absl::StatusOr<DmaSgList> ThreadedDriver::Translate(uint64_t iova, uint64_t length,
                                                    DmaDirection direction) {
  std::shared_ptr<DeviceContext> client = context();
  if (client == nullptr) return NoClient();
  return client->DmaPin(iova, length, direction);
}

absl::Status ThreadedDriver::ReadMemory(uint64_t iova, absl::Span<uint8_t> out) {
  std::shared_ptr<DeviceContext> client = context();
  if (client == nullptr) return NoClient();
  return client->DmaRead(iova, out);
}

absl::Status ThreadedDriver::WriteMemory(uint64_t iova, absl::Span<const uint8_t> data) {
  std::shared_ptr<DeviceContext> client = context();
  if (client == nullptr) return NoClient();
  return client->DmaWrite(iova, data);
}

}  // namespace vfu::capi
