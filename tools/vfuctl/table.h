// Table: left-aligned text columns for vfuctl's output.
//
//   Table t({"NAME", "SOCKET"});
//   t.AddRow({"gpio", "/run/gpio.sock"});
//   std::cout << t.Render();
//
// Abseil-free (vfuctl includes gRPC; see vfu/control/grpc_guard.h).
#ifndef VFU_TOOLS_VFUCTL_TABLE_H_
#define VFU_TOOLS_VFUCTL_TABLE_H_

#include <algorithm>
#include <string>
#include <vector>

namespace vfu::vfuctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

  // Missing cells are empty; extra cells are dropped.
  void AddRow(std::vector<std::string> row) {
    row.resize(rows_.front().size());
    rows_.push_back(std::move(row));
  }

  // Columns two spaces apart, no trailing blanks.
  std::string Render() const {
    std::vector<size_t> widths(rows_.front().size(), 0);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace vfu::vfuctl

#endif  // VFU_TOOLS_VFUCTL_TABLE_H_
