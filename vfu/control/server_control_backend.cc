#include "vfu/control/server_control_backend.h"

#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/migration_state.h"
#include "vfu/device/device_spec_builder.h"
#include "vfu/stats/device_statistics.h"
#include "vfu/stats/server_event.h"
#include "vfu/wire/constants.h"

namespace vfu::control {
namespace {

constexpr char kServerVersion[] = "vfu 0.1";
constexpr char kApiVersion[] = "vfu.control.v1";

uint64_t MillisSince(absl::Time t) {
  const int64_t ms = absl::ToInt64Milliseconds(absl::Now() - t);
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

void FillClient(const ClientIdentity& c, v1::AttachedClient* out) {
  out->set_pid(c.pid);
  out->set_uid(c.uid);
  out->set_gid(c.gid);
  out->set_negotiated(c.negotiated);
  out->set_version_major(c.version_major);
  out->set_version_minor(c.version_minor);
  out->set_max_msg_fds(c.max_msg_fds);
  out->set_max_data_xfer_size(c.max_data_xfer_size);
  out->set_max_dma_maps(c.max_dma_maps);
  out->set_migration_pgsize(c.migration_pgsize);
  out->set_twin_socket(c.twin_socket);
  out->set_write_multiple(c.write_multiple);
  out->set_attached_ms(MillisSince(c.connected_at));
}

// The layout a device written in code describes: regions and interrupt
// counts (its PCI identity lives in config space, which only the device's
// own thread may read).
void DescribeLayout(const Device& device, proto::DeviceSpec* spec) {
  for (uint32_t index = 0; index < device.num_regions(); ++index) {
    if (index == wire::kPciNumRegions - 2) continue;  // config space: the framework's
    const RegionDescription r = device.DescribeRegion(index);
    if (r.size == 0) continue;
    proto::Region* region = spec->add_regions();
    region->set_index(index);
    region->set_size(r.size);
    region->set_readable(r.readable);
    region->set_writable(r.writable);
    for (const wire::SparseMmapArea& area : r.mmap_areas) {
      proto::MmapArea* a = region->add_mmap_areas();
      a->set_offset(area.offset);
      a->set_size(area.size);
    }
    if (r.type) {
      region->set_type(r.type->type);
      region->set_subtype(r.type->subtype);
    }
  }
  proto::Interrupts* irqs = spec->mutable_interrupts();
  const uint32_t num_irqs = device.num_irqs();
  // VFIO_PCI_{INTX,MSI,MSIX,ERR,REQ}_IRQ_INDEX.
  if (num_irqs > 0) irqs->set_intx(device.IrqCount(0) > 0);
  if (num_irqs > 1) irqs->set_msi_vectors(device.IrqCount(1));
  if (num_irqs > 2) irqs->set_msix_vectors(device.IrqCount(2));
  if (num_irqs > 3) irqs->set_err(device.IrqCount(3) > 0);
  if (num_irqs > 4) irqs->set_req(device.IrqCount(4) > 0);
}

std::string ErrnoName(uint32_t value) {
  const char* name = value < DeviceStatistics::kErrnoSlots - 1
                         ? ::strerrorname_np(static_cast<int>(value))
                         : nullptr;
  if (name != nullptr) return name;
  return value == DeviceStatistics::kErrnoSlots - 1 ? "OTHER" : absl::StrCat("E", value);
}

void FillEvent(const ServerEvent& e, v1::Event* out) {
  out->set_sequence(e.sequence);
  out->set_time_us(absl::ToUnixMicros(e.time));
  out->set_kind(static_cast<v1::Event::Kind>(static_cast<int>(e.kind)));
  out->set_device(e.device);
  out->set_reason(e.reason);
  if (e.client) FillClient(*e.client, out->mutable_client());
  if (e.kind == ServerEvent::Kind::kMigrationStateChanged) {
    out->set_migration_state(static_cast<v1::MigrationState>(e.migration_state));
  }
  if (e.kind == ServerEvent::Kind::kProtocolError) {
    out->set_command(std::string(wire::CommandName(e.command)));
    out->set_errno_value(e.errno_value);
  }
}

// VFIO's numbering is the .proto's (MigrationState).
bool IsSettableState(v1::MigrationState state) {
  return state >= v1::MIGRATION_STATE_STOP && state <= v1::MIGRATION_STATE_PRE_COPY_P2P;
}

// Where SaveState and LoadState may start, and return to.
absl::Status CheckSettled(MigrationState state) {
  if (state == MigrationState::kRunning || state == MigrationState::kStop) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("a migration is in progress (state ", MigrationStateName(state),
                   "): set RUNNING or STOP first"));
}

absl::Status WalkTo(MigrationEngine& engine, MigrationState target) {
  absl::StatusOr<std::vector<MigrationState>> path =
      engine.Plan(static_cast<uint32_t>(target));
  if (!path.ok()) return path.status();
  return engine.Walk(*path);
}

// Saves the device's stream into `out`: STOP_COPY, read to the end, then
// back to where it was.
absl::Status SaveStream(MigrationEngine& engine, std::string& out) {
  const MigrationState start = engine.state();
  VFU_RETURN_IF_ERROR(CheckSettled(start));
  VFU_RETURN_IF_ERROR(WalkTo(engine, MigrationState::kStopCopy));
  absl::Status read = absl::OkStatus();
  std::vector<uint8_t> buffer;
  constexpr uint32_t kReadSize = 1 << 20;
  while (true) {
    absl::StatusOr<absl::Span<const uint8_t>> data = engine.ReadData(kReadSize, buffer);
    if (!data.ok()) {
      read = data.status();
      break;
    }
    if (data->empty()) break;  // the end of the stream
    if (out.size() + data->size() > ControlBackend::kMaxDeviceStateBytes) {
      read = absl::ResourceExhaustedError(
          absl::StrCat("the device's state exceeds ", ControlBackend::kMaxDeviceStateBytes,
                       " bytes"));
      break;
    }
    out.append(reinterpret_cast<const char*>(data->data()), data->size());
  }
  absl::Status back = WalkTo(engine, start);
  return read.ok() ? back : read;
}

// Loads `data` as the device's stream: RESUMING, write, then back to where
// it was (leaving RESUMING is where the device checks the stream; a bad
// stream leaves the device in RESUMING, as it would a VMM).
absl::Status LoadStream(MigrationEngine& engine, const std::string& data) {
  const MigrationState start = engine.state();
  VFU_RETURN_IF_ERROR(CheckSettled(start));
  VFU_RETURN_IF_ERROR(WalkTo(engine, MigrationState::kResuming));
  absl::Status write = engine.WriteData(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  absl::Status back = WalkTo(engine, start);
  return write.ok() ? back : write;
}

}  // namespace

ControlStatus FromAbsl(const absl::Status& status) {
  return ControlStatus{static_cast<int>(status.code()), std::string(status.message())};
}

ServerControlBackend::ServerControlBackend(Server& server) : server_(server) {}

ServerControlBackend::~ServerControlBackend() {
  std::vector<std::string> paths;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [path, added] : added_) paths.push_back(path);
  }
  // The server must not keep serving devices about to be destroyed.
  for (const std::string& path : paths) server_.RemoveDevice(path).IgnoreError();
}

ControlStatus ServerControlBackend::GetHealth(v1::GetHealthResponse* response) {
  response->set_status("SERVING");
  response->set_server_version(kServerVersion);
  response->set_api_version(kApiVersion);
  response->set_uptime_ms(MillisSince(server_.started_at()));
  response->set_devices(static_cast<uint32_t>(server_.devices().size()));
  response->set_pid(::getpid());
  return ControlStatus::Ok();
}

void ServerControlBackend::DescribeDevice(const DeviceEndpoint& endpoint, v1::DeviceInfo* info) {
  info->set_name(endpoint.name());
  info->set_socket_path(endpoint.socket_path());
  {
    absl::MutexLock lock(&mu_);
    auto it = added_.find(endpoint.socket_path());
    if (it != added_.end() && it->second.device.get() == &endpoint.device()) {
      *info->mutable_spec() = it->second.spec;
      info->set_spec_complete(true);
    }
  }
  if (!info->spec_complete()) DescribeLayout(endpoint.device(), info->mutable_spec());
  if (std::optional<ClientIdentity> client = endpoint.client()) {
    FillClient(*client, info->mutable_client());
  }
  info->set_migration_state(
      endpoint.device().SupportsMigration()
          ? static_cast<v1::MigrationState>(endpoint.migration().state())
          : v1::MIGRATION_STATE_NOT_SUPPORTED);
  info->set_uptime_ms(MillisSince(endpoint.added_at()));
}

ControlStatus ServerControlBackend::ListDevices(v1::ListDevicesResponse* response) {
  absl::ReaderMutexLock lifetime(&device_lifetime_mu_);
  for (const std::shared_ptr<DeviceEndpoint>& endpoint : server_.devices()) {
    DescribeDevice(*endpoint, response->add_devices());
  }
  return ControlStatus::Ok();
}

ControlStatus ServerControlBackend::GetStats(const v1::GetStatsRequest& request,
                                             v1::GetStatsResponse* response) {
  if (request.device().device().empty()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "device.device: empty");
  }
  std::shared_ptr<DeviceEndpoint> endpoint = server_.FindDevice(request.device().device());
  if (endpoint == nullptr) {
    return ControlStatus::Error(ControlStatus::kNotFound,
                                absl::StrCat("no device named ", request.device().device()));
  }
  const DeviceStatistics::Snapshot s = endpoint->statistics().snapshot();
  v1::DeviceStats* out = response->mutable_stats();
  out->set_name(endpoint->name());
  for (const DeviceStatistics::CommandSnapshot& c : s.commands) {
    v1::CommandStats* cs = out->add_commands();
    cs->set_command(c.command == DeviceStatistics::kOtherCommand
                        ? "OTHER"
                        : std::string(wire::CommandName(static_cast<uint16_t>(c.command))));
    cs->set_command_code(c.command);
    cs->set_count(c.count);
    cs->set_errors(c.errors);
    v1::LatencyHistogram* h = cs->mutable_latency();
    // Trailing empty buckets are left out.
    size_t used = c.latency.buckets.size();
    while (used > 0 && c.latency.buckets[used - 1] == 0) --used;
    for (size_t i = 0; i < used; ++i) h->add_buckets(c.latency.buckets[i]);
    h->set_count(c.latency.count);
    h->set_sum_ns(c.latency.sum_ns);
  }
  for (const DeviceStatistics::ErrnoSnapshot& e : s.errors) {
    v1::ErrnoCount* ec = out->add_errors();
    ec->set_errno_value(e.errno_value);
    ec->set_errno_name(ErrnoName(e.errno_value));
    ec->set_count(e.count);
  }
  out->set_region_bytes_read(s.region_bytes_read);
  out->set_region_bytes_written(s.region_bytes_written);
  out->set_dma_mapped_bytes_read(s.dma_mapped_bytes_read);
  out->set_dma_mapped_bytes_written(s.dma_mapped_bytes_written);
  out->set_dma_message_bytes_read(s.dma_message_bytes_read);
  out->set_dma_message_bytes_written(s.dma_message_bytes_written);
  out->set_dma_messages(s.dma_messages);
  // Counted where the device delivers them (its IrqController).
  const InterruptCounts irqs = endpoint->device().interrupt_counts();
  out->set_interrupts_raised(irqs.raised);
  out->set_interrupts_coalesced(irqs.coalesced);
  out->set_interrupts_pending(irqs.pending);
  out->set_backpressure_reply_episodes(s.backpressure_reply_episodes);
  out->set_backpressure_command_episodes(s.backpressure_command_episodes);
  out->set_clients_connected(s.clients_connected);
  out->set_clients_served(s.clients_served);
  out->set_clients_refused(s.clients_refused);
  return ControlStatus::Ok();
}

ControlStatus ServerControlBackend::WaitEvents(uint64_t after_sequence, int64_t timeout_ms,
                                               std::vector<v1::Event>* events) {
  EventBus::Batch batch = server_.events().WaitAfter(
      after_sequence, absl::Now() + absl::Milliseconds(timeout_ms < 0 ? 0 : timeout_ms));
  for (const ServerEvent& e : batch.events) FillEvent(e, &events->emplace_back());
  if (!events->empty()) events->front().set_dropped_before(batch.dropped_before);
  return ControlStatus::Ok();
}

ControlStatus ServerControlBackend::AddDevice(const v1::AddDeviceRequest& request,
                                              v1::AddDeviceResponse* response) {
  const std::string& path = request.socket_path();
  if (path.empty()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "socket_path: empty");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return ControlStatus::Error(
        ControlStatus::kInvalidArgument,
        absl::StrCat("socket_path: longer than ", sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  if (request.socket_mode() > 0777) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument,
                                "socket_mode: not permission bits (at most 0777)");
  }
  if (!request.has_spec()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "spec: missing");
  }
  absl::StatusOr<std::unique_ptr<PciDevice>> device = DeviceFromProto(request.spec());
  if (!device.ok()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument,
                                absl::StrCat("spec: ", device.status().message()));
  }
  // Owned by added_ (below) until RemoveDevice has taken it off the server.
  PciDevice* const raw = device->get();
  {
    absl::MutexLock lock(&mu_);
    if (added_.size() >= kMaxAddedDevices) {
      return ControlStatus::Error(
          ControlStatus::kResourceExhausted,
          absl::StrCat("at most ", kMaxAddedDevices, " devices can be added this way"));
    }
    if (added_.count(path) != 0) {
      return ControlStatus::Error(ControlStatus::kAlreadyExists,
                                  absl::StrCat("socket_path: ", path, " is served already"));
    }
    // Kept before the server serves it, so no request sees it unowned.
    added_[path] = AddedDevice{.spec = request.spec(), .device = std::move(*device)};
  }
  std::string name = request.name();
  if (name.empty()) name = request.spec().name();
  DeviceOptions options;
  options.name = name;
  options.socket_mode = request.socket_mode() == 0 ? 0600 : request.socket_mode();
  absl::Status added = server_.AddDevice(path, *raw, options);
  if (!added.ok()) {
    absl::MutexLock lock(&mu_);
    added_.erase(path);
    ControlStatus status = FromAbsl(added);
    if (added.code() == absl::StatusCode::kInvalidArgument) status.message.insert(0, "spec: ");
    return status;
  }
  absl::ReaderMutexLock lifetime(&device_lifetime_mu_);
  std::shared_ptr<DeviceEndpoint> endpoint = server_.FindDevice(path);
  if (endpoint != nullptr) DescribeDevice(*endpoint, response->mutable_device());
  return ControlStatus::Ok();
}

ControlStatus ServerControlBackend::RemoveDevice(const v1::RemoveDeviceRequest& request) {
  const std::string& ref = request.device().device();
  if (ref.empty()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "device.device: empty");
  }
  std::shared_ptr<DeviceEndpoint> endpoint = server_.FindDevice(ref);
  if (endpoint == nullptr) {
    return ControlStatus::Error(ControlStatus::kNotFound, absl::StrCat("no device named ", ref));
  }
  const std::string path = endpoint->socket_path();
  const Device* device = &endpoint->device();
  endpoint.reset();
  if (absl::Status removed = server_.RemoveDevice(path); !removed.ok()) return FromAbsl(removed);
  // The server no longer uses the device: if we built it, it can go.
  std::unique_ptr<PciDevice> released;
  {
    absl::MutexLock lock(&mu_);
    auto it = added_.find(path);
    if (it != added_.end() && it->second.device.get() == device) {
      released = std::move(it->second.device);
      added_.erase(it);
    }
  }
  if (released != nullptr) {
    // Requests that found the device before its removal are done first.
    absl::MutexLock lifetime(&device_lifetime_mu_);
    released.reset();
  }
  return ControlStatus::Ok();
}

ControlStatus ServerControlBackend::ResetDevice(const v1::ResetDeviceRequest& request) {
  const std::string& ref = request.device().device();
  if (ref.empty()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "device.device: empty");
  }
  return FromAbsl(server_.ResetDevice(ref, absl::Now() + kResetTimeout));
}

ControlStatus ServerControlBackend::RunMigrationTask(
    const std::string& ref, std::function<absl::Status(MigrationEngine&)> task) {
  if (ref.empty()) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument, "device.device: empty");
  }
  absl::ReaderMutexLock lifetime(&device_lifetime_mu_);
  std::shared_ptr<DeviceEndpoint> endpoint = server_.FindDevice(ref);
  if (endpoint == nullptr) {
    return ControlStatus::Error(ControlStatus::kNotFound, absl::StrCat("no device named ", ref));
  }
  if (!endpoint->device().SupportsMigration()) {
    return ControlStatus::Error(ControlStatus::kFailedPrecondition,
                                absl::StrCat(ref, ": the device does not support migration"));
  }
  // The task may outlive this call (deadline): it holds the endpoint.
  return FromAbsl(endpoint->RunOnDevice(
      [endpoint, task = std::move(task)](Device&) -> absl::Status {
        // Checked here, in order with the client's commands: a client that
        // attached meanwhile is seen.
        if (std::optional<ClientIdentity> client = endpoint->client()) {
          return absl::FailedPreconditionError(absl::StrCat(
              endpoint->name(), ": a client (pid ", client->pid,
              ") is attached and owns the device's migration; detach it first"));
        }
        return task(endpoint->migration());
      },
      absl::Now() + kMigrationTimeout));
}

ControlStatus ServerControlBackend::SaveState(const v1::SaveStateRequest& request,
                                              std::string* state) {
  // Shared with the task, which may outlive this call.
  auto saved = std::make_shared<std::string>();
  ControlStatus status = RunMigrationTask(
      request.device().device(),
      [saved](MigrationEngine& engine) { return SaveStream(engine, *saved); });
  if (status.ok()) *state = std::move(*saved);
  return status;
}

ControlStatus ServerControlBackend::LoadState(const std::string& device, const std::string& state) {
  if (state.size() > kMaxDeviceStateBytes) {
    return ControlStatus::Error(
        ControlStatus::kResourceExhausted,
        absl::StrCat("state: more than ", kMaxDeviceStateBytes, " bytes"));
  }
  auto data = std::make_shared<const std::string>(state);
  return RunMigrationTask(device,
                          [data](MigrationEngine& engine) { return LoadStream(engine, *data); });
}

ControlStatus ServerControlBackend::SetMigrationState(const v1::SetMigrationStateRequest& request,
                                                      v1::SetMigrationStateResponse* response) {
  if (!IsSettableState(request.state())) {
    return ControlStatus::Error(ControlStatus::kInvalidArgument,
                                absl::StrCat("state: ", v1::MigrationState_Name(request.state()),
                                             " is not a state a device can be set to"));
  }
  // Written by the task before RunOnDevice returns its status (or never,
  // past the deadline: then the response says UNKNOWN).
  auto reached = std::make_shared<std::atomic<uint32_t>>(0);
  const uint32_t target = static_cast<uint32_t>(request.state());
  ControlStatus status = RunMigrationTask(
      request.device().device(), [reached, target](MigrationEngine& engine) {
        absl::Status walked = absl::OkStatus();
        absl::StatusOr<std::vector<MigrationState>> path = engine.Plan(target);
        walked = path.ok() ? engine.Walk(*path) : path.status();
        reached->store(static_cast<uint32_t>(engine.state()));
        return walked;
      });
  response->set_state(static_cast<v1::MigrationState>(reached->load()));
  return status;
}

}  // namespace vfu::control
