// A main() for fuzz targets built without libFuzzer: feeds every file of the
// directories given on the command line to LLVMFuzzerTestOneInput, then a
// deterministic set of mutations of each (bit flips, truncations, byte
// runs), so the plain, ASan and TSan test passes exercise the decoders
// beyond their seeds. Fails when a directory holds no seed.
#include <dirent.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return files;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    files.push_back(dir + "/" + name);
  }
  ::closedir(d);
  return files;
}

void Run(const std::vector<uint8_t>& input) { LLVMFuzzerTestOneInput(input.data(), input.size()); }

void RunMutations(const std::vector<uint8_t>& seed, std::mt19937& rng) {
  for (size_t cut = 0; cut < seed.size(); cut += 1 + seed.size() / 64) {
    Run(std::vector<uint8_t>(seed.begin(), seed.begin() + cut));
  }
  for (int i = 0; i < 200 && !seed.empty(); ++i) {
    std::vector<uint8_t> m = seed;
    size_t flips = 1 + rng() % 4;
    for (size_t f = 0; f < flips; ++f) {
      size_t pos = rng() % m.size();
      switch (rng() % 4) {
        case 0:
          m[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          m[pos] = 0xff;
          break;
        case 2:
          m[pos] = 0;
          break;
        default:
          m[pos] = static_cast<uint8_t>(rng());
          break;
      }
    }
    Run(m);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 rng(1234);
  size_t seeds = 0;
  for (int i = 1; i < argc; ++i) {
    for (const std::string& path : ListFiles(argv[i])) {
      std::ifstream in(path, std::ios::binary);
      std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
      Run(data);
      RunMutations(data, rng);
      ++seeds;
    }
  }
  Run({});
  std::printf("replayed %zu seeds and their mutations\n", seeds);
  if (seeds == 0) {
    std::fprintf(stderr, "no seeds found\n");
    return 1;
  }
  return 0;
}
