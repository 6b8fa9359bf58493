#include "devices/nvme/nvme_namespace.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace vfu::nvme {
namespace {

// Advances `iov`/`count` past `done` bytes; `storage` holds the trimmed copy.
void Skip(const struct iovec*& iov, int& count, uint64_t done, std::vector<struct iovec>& storage) {
  storage.assign(iov, iov + count);
  size_t i = 0;
  while (i < storage.size() && done >= storage[i].iov_len) {
    done -= storage[i].iov_len;
    ++i;
  }
  if (i < storage.size()) {
    storage[i].iov_base = static_cast<uint8_t*>(storage[i].iov_base) + done;
    storage[i].iov_len -= done;
  }
  storage.erase(storage.begin(), storage.begin() + static_cast<std::ptrdiff_t>(i));
  iov = storage.data();
  count = static_cast<int>(storage.size());
}

uint64_t Total(const struct iovec* iov, int count) {
  uint64_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  return total;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NvmeNamespace>> NvmeNamespace::Open(const std::string& path,
                                                                   uint32_t lba_size) {
  if (lba_size != 512 && lba_size != 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("LBA size ", lba_size, " is neither 512 nor 4096"));
  }
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a file"));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    const off_t end = ::lseek(fd.get(), 0, SEEK_END);
    if (end < 0) return absl::ErrnoToStatus(errno, absl::StrCat("lseek ", path));
    size = static_cast<uint64_t>(end);
  }
  const uint64_t num_lbas = size / lba_size;
  if (num_lbas == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds no whole LBA of ", lba_size, " bytes"));
  }
  return std::unique_ptr<NvmeNamespace>(
      new NvmeNamespace(path, std::move(fd), lba_size, num_lbas));
}

NvmeNamespace::NvmeNamespace(std::string path, UniqueFd fd, uint32_t lba_size, uint64_t num_lbas)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      lba_size_(lba_size),
      lba_shift_(lba_size == 512 ? 9 : 12),
      num_lbas_(num_lbas) {}

absl::Status NvmeNamespace::ReadV(const struct iovec* iov, int count, uint64_t offset) {
  const uint64_t total = Total(iov, count);
  uint64_t done = 0;
  std::vector<struct iovec> storage;
  while (done < total) {
    const ssize_t n = ::preadv(fd_.get(), iov, count, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "preadv");
    }
    if (n == 0) return absl::OutOfRangeError("read past the end of the image");
    done += static_cast<uint64_t>(n);
    if (done < total) Skip(iov, count, static_cast<uint64_t>(n), storage);
  }
  CountRead(total);
  return absl::OkStatus();
}

absl::Status NvmeNamespace::WriteV(const struct iovec* iov, int count, uint64_t offset) {
  const uint64_t total = Total(iov, count);
  uint64_t done = 0;
  std::vector<struct iovec> storage;
  while (done < total) {
    const ssize_t n = ::pwritev(fd_.get(), iov, count, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "pwritev");
    }
    if (n == 0) return absl::InternalError("pwritev wrote nothing");
    done += static_cast<uint64_t>(n);
    if (done < total) Skip(iov, count, static_cast<uint64_t>(n), storage);
  }
  CountWrite(total);
  return absl::OkStatus();
}

absl::Status NvmeNamespace::WriteZeroes(uint64_t slba, uint64_t count) {
  const off_t offset = static_cast<off_t>(slba << lba_shift_);
  const off_t length = static_cast<off_t>(count << lba_shift_);
  if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length) == 0) {
    return absl::OkStatus();
  }
  if (errno != EOPNOTSUPP) return absl::ErrnoToStatus(errno, "fallocate");
  // The file system cannot zero a range: write zeros.
  static const std::vector<uint8_t> zeros(1 << 20);
  for (off_t done = 0; done < length;) {
    const size_t n = static_cast<size_t>(std::min<off_t>(length - done, zeros.size()));
    const ssize_t written = ::pwrite(fd_.get(), zeros.data(), n, offset + done);
    if (written < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "pwrite");
    }
    done += written;
  }
  return absl::OkStatus();
}

absl::Status NvmeNamespace::Deallocate(uint64_t slba, uint64_t count) {
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(slba << lba_shift_),
                  static_cast<off_t>(count << lba_shift_)) == 0) {
    return absl::OkStatus();
  }
  // Deallocation is advisory, but reads must return zeros (DLFEAT says so).
  if (errno == EOPNOTSUPP) return WriteZeroes(slba, count);
  return absl::ErrnoToStatus(errno, "fallocate");
}

absl::Status NvmeNamespace::Flush() {
  if (::fdatasync(fd_.get()) != 0) return absl::ErrnoToStatus(errno, "fdatasync");
  return absl::OkStatus();
}

}  // namespace vfu::nvme
