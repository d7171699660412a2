// Files: a read-only memory map with bounds-checked access, whole-file reads, and an output file
// that appears under its final name only when complete (written to a temp name, then renamed).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  // Pointer to [offset, offset+len); throws strata::Error naming `what` if out of range.
  const uint8_t* range(uint64_t offset, uint64_t len, const char* what) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

std::string read_text_file(const std::string& path);
// Reads exactly len bytes at offset (buffered pread); throws naming `what` on a short read.
void pread_exact(const std::string& path, uint64_t offset, uint64_t len, void* dst,
                 const std::string& what);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
uint64_t file_size(const std::string& path);

// Writes to "<path>.tmp.<pid>" and renames onto <path> in commit(). If the object is destroyed
// without commit() (an error, a full disk), the temp file is removed and <path> is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void pad_to(uint64_t alignment);  // zero bytes up to a multiple of alignment
  uint64_t tell() const { return written_; }
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  void flush();
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  std::string buf_;
  bool committed_ = false;
};

// Memory use of this process, from /proc/self/status (bytes).
uint64_t peak_rss_bytes();
uint64_t current_rss_bytes();

}  // namespace strata
