// A cursor over bytes in memory that checks every read against the end, so a truncated or
// hostile file becomes a strata::Error naming the file, the field and the offset.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"

namespace strata {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, uint64_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& source() const { return source_; }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(uint64_t len, const char* what) {
    need(len, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }
  void need(uint64_t n, const char* what) const {
    if (n > size_ - pos_)
      fail("{}: truncated: {} needs {} bytes at offset {} but the file has {} bytes", source_, what,
           n, pos_, size_);
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string source_;
};

}  // namespace strata
