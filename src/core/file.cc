#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace strata {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'{}' is not a regular file", path);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("cannot map '{}': {}", path, std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

const uint8_t* MappedFile::range(uint64_t offset, uint64_t len, const char* what) const {
  if (offset > size_ || len > size_ - offset)
    fail("{}: {} at bytes [{}, {}) runs past the end of the file ({} bytes)", path_, what, offset,
         offset + len, size_);
  return data_ + offset;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void pread_exact(const std::string& path, uint64_t offset, uint64_t len, void* dst,
                 const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '{}': {}", path, std::strerror(errno));
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, static_cast<uint8_t*>(dst) + done, len - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      if (n == 0)
        fail("{}: {} at bytes [{}, {}): the file ends after {} bytes", path, what, offset,
             offset + len, offset + done);
      fail("{}: reading {} failed: {}", path, what, std::strerror(e));
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat '{}': {}", path, std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create '{}': {}", tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::flush() {
  size_t off = 0;
  while (off < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing '{}' failed after {} bytes: {}", tmp_, written_ - buf_.size() + off,
           std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  buf_.clear();
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  if (n >= (1u << 20)) {
    flush();
    buf_.assign(p, n);  // large writes go straight through
    written_ += n;
    flush();
    return;
  }
  buf_.append(p, n);
  written_ += n;
  if (buf_.size() >= (4u << 20)) flush();
}

void AtomicFile::pad_to(uint64_t alignment) {
  const uint64_t pad = (alignment - written_ % alignment) % alignment;
  static const char zeros[256] = {};
  for (uint64_t left = pad; left > 0;) {
    const uint64_t n = left < sizeof(zeros) ? left : sizeof(zeros);
    write(zeros, n);
    left -= n;
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail("fsync '{}': {}", tmp_, std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("close '{}': {}", tmp_, std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("rename '{}' -> '{}': {}", tmp_, path_, std::strerror(errno));
  committed_ = true;
}

namespace {
uint64_t status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t klen = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, klen, key) == 0) return std::stoull(line.substr(klen + 1)) * 1024;
  return 0;
}
}  // namespace

uint64_t peak_rss_bytes() {
  return status_kb("VmHWM");
}
uint64_t current_rss_bytes() {
  return status_kb("VmRSS");
}

}  // namespace strata
