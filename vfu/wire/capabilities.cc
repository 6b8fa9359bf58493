#include "vfu/wire/capabilities.h"

#include <bit>
#include <cerrno>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();

// The member `name` of `object` (which is an object), or nullptr.
const Json* FindMember(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// Reads the optional unsigned member `where`.`name`, which must be a
// non-negative JSON integer in [min, max]. get_ptr() is the type check: it
// yields nullptr for anything but an unsigned integer (a string, a float,
// a negative number), so nothing here can throw.
absl::StatusOr<std::optional<uint64_t>> ReadUnsigned(const Json& object, std::string_view where,
                                                     const char* name, uint64_t min,
                                                     uint64_t max) {
  const Json* member = FindMember(object, name);
  if (member == nullptr) return std::nullopt;
  const auto* value = member->get_ptr<const Json::number_unsigned_t*>();
  if (value == nullptr) {
    return WireError(EINVAL, absl::StrCat(where, ".", name,
                                          " is not a non-negative JSON integer"));
  }
  if (*value < min || *value > max) {
    return WireError(EINVAL, absl::StrCat(where, ".", name, " = ", *value,
                                          " is outside [", min, ", ", max, "]"));
  }
  return *value;
}

// Reads the optional boolean member `where`.`name` (true/false only).
absl::StatusOr<std::optional<bool>> ReadBool(const Json& object, std::string_view where,
                                             const char* name) {
  const Json* member = FindMember(object, name);
  if (member == nullptr) return std::nullopt;
  const auto* value = member->get_ptr<const Json::boolean_t*>();
  if (value == nullptr) {
    return WireError(EINVAL, absl::StrCat(where, ".", name, " is not a JSON boolean"));
  }
  return *value;
}

// The optional member `where`.`name`, which must be an object when present.
absl::StatusOr<const Json*> ReadObject(const Json& object, std::string_view where,
                                       const char* name) {
  const Json* member = FindMember(object, name);
  if (member != nullptr && !member->is_object()) {
    return WireError(EINVAL, absl::StrCat(where, ".", name, " is not a JSON object"));
  }
  return member;
}

absl::StatusOr<TwinSocketCapability> ParseTwinSocket(const Json& twin) {
  constexpr std::string_view kWhere = "capabilities.twin_socket";
  TwinSocketCapability result;
  VFU_ASSIGN_OR_RETURN(std::optional<bool> supported, ReadBool(twin, kWhere, "supported"));
  result.supported = supported.value_or(false);
  VFU_ASSIGN_OR_RETURN(std::optional<uint64_t> fd_index,
                       ReadUnsigned(twin, kWhere, "fd_index", 0, kU32Max));
  if (fd_index.has_value()) result.fd_index = static_cast<uint32_t>(*fd_index);
  return result;
}

absl::StatusOr<MigrationCapability> ParseMigration(const Json& migration) {
  constexpr std::string_view kWhere = "capabilities.migration";
  MigrationCapability result;
  VFU_ASSIGN_OR_RETURN(result.pgsize,
                       ReadUnsigned(migration, kWhere, "pgsize", 1,
                                    std::numeric_limits<uint64_t>::max()));
  if (result.pgsize.has_value() && !std::has_single_bit(*result.pgsize)) {
    return WireError(EINVAL, absl::StrCat(kWhere, ".pgsize = ", *result.pgsize,
                                          " is not a power of two"));
  }
  VFU_ASSIGN_OR_RETURN(result.max_bitmap_size,
                       ReadUnsigned(migration, kWhere, "max_bitmap_size", 0,
                                    std::numeric_limits<uint64_t>::max()));
  return result;
}

absl::Status ParseCapabilitiesObject(const Json& caps, Capabilities& result) {
  constexpr std::string_view kWhere = "capabilities";
  VFU_ASSIGN_OR_RETURN(std::optional<uint64_t> max_msg_fds,
                       ReadUnsigned(caps, kWhere, "max_msg_fds", 0, kMaxMsgFdsLimit));
  if (max_msg_fds.has_value()) result.max_msg_fds = static_cast<uint32_t>(*max_msg_fds);

  VFU_ASSIGN_OR_RETURN(std::optional<uint64_t> max_data_xfer_size,
                       ReadUnsigned(caps, kWhere, "max_data_xfer_size", 1,
                                    kMaxDataXferSizeLimit));
  if (max_data_xfer_size.has_value()) result.max_data_xfer_size = *max_data_xfer_size;

  VFU_ASSIGN_OR_RETURN(std::optional<uint64_t> max_dma_maps,
                       ReadUnsigned(caps, kWhere, "max_dma_maps", 0, kU32Max));
  if (max_dma_maps.has_value()) result.max_dma_maps = static_cast<uint32_t>(*max_dma_maps);

  VFU_ASSIGN_OR_RETURN(std::optional<uint64_t> pgsizes,
                       ReadUnsigned(caps, kWhere, "pgsizes", 1,
                                    std::numeric_limits<uint64_t>::max()));
  if (pgsizes.has_value()) result.pgsizes = *pgsizes;

  VFU_ASSIGN_OR_RETURN(const Json* twin, ReadObject(caps, kWhere, "twin_socket"));
  if (twin != nullptr) {
    VFU_ASSIGN_OR_RETURN(result.twin_socket, ParseTwinSocket(*twin));
  }

  VFU_ASSIGN_OR_RETURN(std::optional<bool> write_multiple,
                       ReadBool(caps, kWhere, "write_multiple"));
  result.write_multiple = write_multiple.value_or(false);

  VFU_ASSIGN_OR_RETURN(const Json* migration, ReadObject(caps, kWhere, "migration"));
  if (migration != nullptr) {
    VFU_ASSIGN_OR_RETURN(result.migration, ParseMigration(*migration));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Capabilities> ParseCapabilities(std::string_view json) {
  if (json.size() > kMaxCapabilitiesJsonSize) {
    return WireError(EINVAL, absl::StrCat("capabilities JSON of ", json.size(),
                                          " bytes exceeds ", kMaxCapabilitiesJsonSize));
  }
  // nlohmann stops at a NUL as if the text ended there, which would accept
  // "{}\0garbage"; a C-string reader would see a different document.
  if (json.find('\0') != std::string_view::npos) {
    return WireError(EINVAL, "capabilities JSON holds a NUL");
  }
  // allow_exceptions = false: malformed text yields a "discarded" value
  // instead of a throw. The peer's text is never copied into messages.
  const Json top = Json::parse(json.begin(), json.end(), /*cb=*/nullptr,
                               /*allow_exceptions=*/false);
  if (top.is_discarded()) return WireError(EINVAL, "capabilities text is not valid JSON");
  if (!top.is_object()) return WireError(EINVAL, "capabilities JSON is not an object");

  Capabilities result;
  VFU_ASSIGN_OR_RETURN(const Json* caps, ReadObject(top, "top level", "capabilities"));
  if (caps != nullptr) VFU_RETURN_IF_ERROR(ParseCapabilitiesObject(*caps, result));
  return result;
}

std::string SerializeCapabilities(const Capabilities& c, const CapabilityMembers& members) {
  // ordered_json keeps insertion order, so the text follows the spec's table.
  // Every value is an unsigned integer or a bool and every key is ASCII, so
  // dump() has nothing to reject.
  nlohmann::ordered_json caps = nlohmann::ordered_json::object();
  if (members.max_msg_fds) caps["max_msg_fds"] = c.max_msg_fds;
  if (members.max_data_xfer_size) caps["max_data_xfer_size"] = c.max_data_xfer_size;
  if (members.max_dma_maps) caps["max_dma_maps"] = c.max_dma_maps;
  if (members.pgsizes) caps["pgsizes"] = c.pgsizes;
  if (members.twin_socket) {
    nlohmann::ordered_json twin = nlohmann::ordered_json::object();
    twin["supported"] = c.twin_socket.supported;
    if (c.twin_socket.fd_index.has_value()) twin["fd_index"] = *c.twin_socket.fd_index;
    caps["twin_socket"] = std::move(twin);
  }
  if (members.write_multiple) caps["write_multiple"] = c.write_multiple;
  if (members.migration && c.migration.has_value()) {
    nlohmann::ordered_json migration = nlohmann::ordered_json::object();
    if (c.migration->pgsize.has_value()) migration["pgsize"] = *c.migration->pgsize;
    if (c.migration->max_bitmap_size.has_value()) {
      migration["max_bitmap_size"] = *c.migration->max_bitmap_size;
    }
    caps["migration"] = std::move(migration);
  }
  nlohmann::ordered_json top = nlohmann::ordered_json::object();
  top["capabilities"] = std::move(caps);
  return top.dump();
}

}  // namespace vfu::wire
