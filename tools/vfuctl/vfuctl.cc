// vfuctl: the command line of vfu's control plane (proto/control.proto).
//
//   vfuctl --control=/run/vfu/control.sock list
//   vfuctl stats gpio --json
//   vfuctl watch
//   vfuctl add --spec=stub.textproto [--name=NAME] [--mode=0600] /run/vfu/stub.sock
//   vfuctl remove stub
//   vfuctl reset gpio
//   vfuctl save-state gpio FILE | load-state gpio FILE
//
// The control socket comes from --control or $VFU_CONTROL. Tables for
// people by default, --json (protobuf's JSON mapping, snake_case names) for
// scripts. Exit status: 0 done, 1 the server answered with an error (printed
// as CODE: message), 2 a malformed command line or unreadable file.
//
// A gRPC client: Abseil-free like every file that includes gRPC
// (vfu/control/grpc_guard.h).
#include "vfu/control/grpc_guard.h"  // first: see the file

#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "proto/control.grpc.pb.h"
#include "tools/vfuctl/table.h"

namespace vfu::vfuctl {
namespace {

using control::v1::VfuControl;
namespace v1 = control::v1;

constexpr char kUsage[] =
    "Usage: vfuctl [--control=PATH] COMMAND [ARGS]\n"
    "The control socket is --control or $VFU_CONTROL.\n"
    "Commands:\n"
    "  health                          server version and uptime\n"
    "  list [--json]                   devices, their clients and uptime\n"
    "  stats [DEVICE] [--json]         per-device counters (every device if none given)\n"
    "  watch [--after=SEQ] [--count=N] the event feed, live (N events, then exit)\n"
    "  add --spec=FILE.textproto [--name=NAME] [--mode=0600] SOCKET\n"
    "                                  serve a new device from a DeviceSpec\n"
    "  remove DEVICE                   detach its client, stop serving it\n"
    "  reset DEVICE                    reset the device\n"
    "  save-state DEVICE FILE          save device state (needs migration support)\n"
    "  load-state DEVICE FILE          load device state (needs migration support)\n";

struct CommandLine {
  std::string control;
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;  // --name=value (value "" for --name)
};

// Flags anywhere; everything else is the command and its arguments.
bool Parse(int argc, char** argv, CommandLine& line) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
      // "--spec FILE" as well as "--spec=FILE" for the flags that take one.
      if (eq == std::string::npos && i + 1 < argc &&
          (name == "control" || name == "spec" || name == "name" || name == "mode" ||
           name == "after" || name == "count")) {
        value = argv[++i];
      }
      line.flags[name] = value;
    } else if (line.command.empty()) {
      line.command = arg;
    } else {
      line.args.push_back(arg);
    }
  }
  if (auto it = line.flags.find("control"); it != line.flags.end()) {
    line.control = it->second;
  } else if (const char* env = std::getenv("VFU_CONTROL")) {
    line.control = env;
  }
  return !line.command.empty() && !line.control.empty();
}

int Fail(const grpc::Status& status) {
  static const char* const kNames[] = {
      "OK",       "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int code = static_cast<int>(status.error_code());
  std::fprintf(stderr, "vfuctl: %s: %s\n",
               code >= 0 && code < 17 ? kNames[code] : "ERROR", status.error_message().c_str());
  return 1;
}

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "vfuctl: %s\n", why.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds = 30) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}\n";
  return out;
}

std::string Duration(uint64_t ms) {
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 "m%02" PRIu64 "s", ms / 60'000, ms / 1000 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRIu64 "h%02" PRIu64 "m", ms / 3'600'000,
                  ms / 60'000 % 60);
  }
  return buf;
}

std::string ClientText(const v1::DeviceInfo& d) {
  if (!d.has_client()) return "-";
  std::ostringstream s;
  s << "pid " << d.client().pid() << " uid " << d.client().uid();
  return s.str();
}

std::string VersionText(const v1::DeviceInfo& d) {
  if (!d.has_client() || !d.client().negotiated()) return "-";
  std::ostringstream s;
  s << d.client().version_major() << "." << d.client().version_minor();
  if (d.client().twin_socket()) s << " twin";
  if (d.client().write_multiple()) s << " wmulti";
  return s.str();
}

std::string MigrationText(v1::MigrationState state) {
  std::string name = v1::MigrationState_Name(state);
  const std::string prefix = "MIGRATION_STATE_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

int List(VfuControl::Stub& stub, const CommandLine& line) {
  v1::ListDevicesResponse response;
  grpc::Status status = stub.ListDevices(Context().get(), {}, &response);
  if (!status.ok()) return Fail(status);
  if (line.flags.count("json")) {
    std::cout << Json(response);
    return 0;
  }
  Table table({"NAME", "SOCKET", "CLIENT", "VERSION", "REGIONS", "MIGRATION", "UPTIME"});
  for (const v1::DeviceInfo& d : response.devices()) {
    table.AddRow({d.name(), d.socket_path(), ClientText(d), VersionText(d),
                  std::to_string(d.spec().regions_size()), MigrationText(d.migration_state()),
                  Duration(d.uptime_ms())});
  }
  std::cout << table.Render();
  return 0;
}

// The upper bound of the log2 bucket holding quantile `q` ("<= 2^(i+1) ns").
std::string Quantile(const v1::LatencyHistogram& h, double q) {
  if (h.count() == 0) return "-";
  const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(h.count() - 1)) + 1;
  uint64_t seen = 0;
  for (int i = 0; i < h.buckets_size(); ++i) {
    seen += h.buckets(i);
    if (seen >= rank) {
      const double upper_us = static_cast<double>(uint64_t{2} << i) / 1000.0;
      char buf[32];
      std::snprintf(buf, sizeof buf, "<%.3g", upper_us);
      return buf;
    }
  }
  return "-";
}

void PrintStats(const v1::DeviceStats& s) {
  std::cout << "device " << s.name() << "\n";
  Table commands({"COMMAND", "COUNT", "ERRORS", "MEAN_US", "P50_US", "P99_US"});
  for (const v1::CommandStats& c : s.commands()) {
    char mean[32];
    std::snprintf(mean, sizeof mean, "%.2f",
                  c.latency().count() == 0
                      ? 0.0
                      : static_cast<double>(c.latency().sum_ns()) / c.latency().count() / 1000.0);
    commands.AddRow({c.command(), std::to_string(c.count()), std::to_string(c.errors()), mean,
                     Quantile(c.latency(), 0.5), Quantile(c.latency(), 0.99)});
  }
  std::cout << commands.Render();
  if (s.errors_size() > 0) {
    std::cout << "errors:";
    for (const v1::ErrnoCount& e : s.errors()) std::cout << " " << e.errno_name() << "=" << e.count();
    std::cout << "\n";
  }
  Table counters({"COUNTER", "VALUE"});
  auto row = [&counters](const char* name, uint64_t value) {
    counters.AddRow({name, std::to_string(value)});
  };
  row("region_bytes_read", s.region_bytes_read());
  row("region_bytes_written", s.region_bytes_written());
  row("dma_mapped_bytes_read", s.dma_mapped_bytes_read());
  row("dma_mapped_bytes_written", s.dma_mapped_bytes_written());
  row("dma_message_bytes_read", s.dma_message_bytes_read());
  row("dma_message_bytes_written", s.dma_message_bytes_written());
  row("dma_messages", s.dma_messages());
  row("interrupts_raised", s.interrupts_raised());
  row("interrupts_coalesced", s.interrupts_coalesced());
  row("interrupts_pending", s.interrupts_pending());
  row("backpressure_reply_episodes", s.backpressure_reply_episodes());
  row("backpressure_command_episodes", s.backpressure_command_episodes());
  row("clients_connected", s.clients_connected());
  row("clients_served", s.clients_served());
  row("clients_refused", s.clients_refused());
  std::cout << counters.Render();
}

int Stats(VfuControl::Stub& stub, const CommandLine& line) {
  std::vector<std::string> devices = line.args;
  if (devices.empty()) {
    v1::ListDevicesResponse list;
    grpc::Status status = stub.ListDevices(Context().get(), {}, &list);
    if (!status.ok()) return Fail(status);
    for (const v1::DeviceInfo& d : list.devices()) devices.push_back(d.name());
  }
  const bool json = line.flags.count("json") != 0;
  if (json) std::cout << "[";
  for (size_t i = 0; i < devices.size(); ++i) {
    v1::GetStatsRequest request;
    request.mutable_device()->set_device(devices[i]);
    v1::GetStatsResponse response;
    grpc::Status status = stub.GetStats(Context().get(), request, &response);
    if (!status.ok()) return Fail(status);
    if (json) {
      std::cout << (i == 0 ? "" : ",") << Json(response.stats());
    } else {
      if (i > 0) std::cout << "\n";
      PrintStats(response.stats());
    }
  }
  if (json) std::cout << "]\n";
  return 0;
}

std::string EventText(const v1::Event& e) {
  std::ostringstream s;
  std::string kind = v1::Event::Kind_Name(e.kind());
  for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  s << "#" << e.sequence() << " " << kind << " " << e.device();
  if (e.dropped_before() > 0) s << " (" << e.dropped_before() << " events dropped before)";
  if (e.has_client()) s << " pid " << e.client().pid() << " uid " << e.client().uid();
  if (e.kind() == v1::Event::PROTOCOL_ERROR) s << " " << e.command() << " errno " << e.errno_value();
  if (!e.reason().empty()) s << ": " << e.reason();
  return s.str();
}

int Watch(VfuControl::Stub& stub, const CommandLine& line) {
  v1::WatchEventsRequest request;
  int64_t count = -1;
  try {
    if (auto it = line.flags.find("after"); it != line.flags.end()) {
      request.set_after_sequence(std::stoull(it->second));
    }
    if (auto it = line.flags.find("count"); it != line.flags.end()) count = std::stoll(it->second);
  } catch (...) {
    return Usage("--after and --count want numbers");
  }
  grpc::ClientContext context;  // no deadline: a live feed
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader = stub.WatchEvents(&context, request);
  const bool json = line.flags.count("json") != 0;
  v1::Event event;
  int64_t seen = 0;
  while ((count < 0 || seen < count) && reader->Read(&event)) {
    ++seen;
    if (json) {
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      std::string out;
      (void)google::protobuf::util::MessageToJsonString(event, &out, options);
      std::cout << out << std::endl;
    } else {
      std::cout << EventText(event) << std::endl;
    }
  }
  if (count >= 0 && seen >= count) {
    context.TryCancel();
    return 0;
  }
  grpc::Status status = reader->Finish();
  return status.ok() ? 0 : Fail(status);
}

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

int Add(VfuControl::Stub& stub, const CommandLine& line) {
  auto spec = line.flags.find("spec");
  if (spec == line.flags.end() || line.args.size() != 1) {
    return Usage("add wants --spec=FILE.textproto and one SOCKET");
  }
  std::string text;
  if (!ReadFile(spec->second, text)) return Usage("cannot read " + spec->second);
  v1::AddDeviceRequest request;
  request.set_socket_path(line.args[0]);
  google::protobuf::TextFormat::Parser parser;
  if (!parser.ParseFromString(text, request.mutable_spec())) {
    return Usage(spec->second + " is not a vfu.proto.DeviceSpec in text format");
  }
  if (auto it = line.flags.find("name"); it != line.flags.end()) request.set_name(it->second);
  if (auto it = line.flags.find("mode"); it != line.flags.end()) {
    char* end = nullptr;
    const unsigned long mode = std::strtoul(it->second.c_str(), &end, 8);
    if (it->second.empty() || *end != '\0') return Usage("--mode wants octal permissions");
    request.set_socket_mode(static_cast<uint32_t>(mode));
  }
  v1::AddDeviceResponse response;
  grpc::Status status = stub.AddDevice(Context().get(), request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << "added " << response.device().name() << " at " << response.device().socket_path()
            << "\n";
  return 0;
}

int Remove(VfuControl::Stub& stub, const CommandLine& line) {
  if (line.args.size() != 1) return Usage("remove wants one DEVICE");
  v1::RemoveDeviceRequest request;
  request.mutable_device()->set_device(line.args[0]);
  v1::RemoveDeviceResponse response;
  grpc::Status status = stub.RemoveDevice(Context().get(), request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << "removed " << line.args[0] << "\n";
  return 0;
}

int Reset(VfuControl::Stub& stub, const CommandLine& line) {
  if (line.args.size() != 1) return Usage("reset wants one DEVICE");
  v1::ResetDeviceRequest request;
  request.mutable_device()->set_device(line.args[0]);
  v1::ResetDeviceResponse response;
  grpc::Status status = stub.ResetDevice(Context().get(), request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << "reset " << line.args[0] << "\n";
  return 0;
}

int SaveState(VfuControl::Stub& stub, const CommandLine& line) {
  if (line.args.size() != 2) return Usage("save-state wants DEVICE FILE");
  v1::SaveStateRequest request;
  request.mutable_device()->set_device(line.args[0]);
  auto context = Context(300);
  std::unique_ptr<grpc::ClientReader<v1::StateChunk>> reader = stub.SaveState(context.get(), request);
  std::string state;
  v1::StateChunk chunk;
  while (reader->Read(&chunk)) state += chunk.data();
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Fail(status);
  std::ofstream out(line.args[1], std::ios::binary);
  out << state;
  if (!out) return Usage("cannot write " + line.args[1]);
  std::cout << "saved " << state.size() << " bytes of " << line.args[0] << "\n";
  return 0;
}

int LoadState(VfuControl::Stub& stub, const CommandLine& line) {
  if (line.args.size() != 2) return Usage("load-state wants DEVICE FILE");
  std::string state;
  if (!ReadFile(line.args[1], state)) return Usage("cannot read " + line.args[1]);
  auto context = Context(300);
  v1::LoadStateResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::StateChunk>> writer =
      stub.LoadState(context.get(), &response);
  constexpr size_t kChunk = 1 << 20;  // under gRPC's 4 MiB message limit
  size_t at = 0;
  bool first = true;
  while (first || at < state.size()) {
    v1::StateChunk chunk;
    if (first) chunk.mutable_device()->set_device(line.args[0]);
    chunk.set_data(state.substr(at, kChunk));
    at += kChunk;
    first = false;
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return Fail(status);
  std::cout << "loaded " << response.bytes_loaded() << " bytes into " << line.args[0] << "\n";
  return 0;
}

int Health(VfuControl::Stub& stub) {
  v1::GetHealthResponse response;
  grpc::Status status = stub.GetHealth(Context().get(), {}, &response);
  if (!status.ok()) return Fail(status);
  std::cout << response.status() << " " << response.server_version() << " ("
            << response.api_version() << "), pid " << response.pid() << ", "
            << response.devices() << " device(s), up " << Duration(response.uptime_ms()) << "\n";
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  CommandLine line;
  if (!Parse(argc, argv, line)) {
    if (line.flags.count("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    return Usage(line.command.empty() ? "no command" : "no control socket (--control or $VFU_CONTROL)");
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("unix:" + line.control, grpc::InsecureChannelCredentials());
  std::unique_ptr<VfuControl::Stub> stub = VfuControl::NewStub(channel);
  const std::string& c = line.command;
  if (c == "health") return Health(*stub);
  if (c == "list") return List(*stub, line);
  if (c == "stats") return Stats(*stub, line);
  if (c == "watch") return Watch(*stub, line);
  if (c == "add") return Add(*stub, line);
  if (c == "remove") return Remove(*stub, line);
  if (c == "reset") return Reset(*stub, line);
  if (c == "save-state") return SaveState(*stub, line);
  if (c == "load-state") return LoadState(*stub, line);
  return Usage("unknown command " + c);
}

}  // namespace vfu::vfuctl

int main(int argc, char** argv) { return vfu::vfuctl::Main(argc, argv); }
