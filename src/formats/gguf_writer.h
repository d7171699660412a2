// GGUF v3 writer. Metadata and the tensor index are collected first; write() then streams each
// tensor's bytes from its producer into a temp file (with a progress line) and renames it into
// place only when complete.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/gguf.h"

namespace strata {

class GgufWriter {
 public:
  // Fills `dst` (exactly the tensor's byte size) with the tensor's data.
  using Producer = std::function<void(uint8_t* dst, uint64_t nbytes)>;

  void set(const std::string& key, GgufValue v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_str(const std::string& key, const std::string& v);
  void set_strs(const std::string& key, const std::vector<std::string>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);

  // shape outermost first (strata's order); written to the file innermost first.
  void add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                  Producer p);

  void set_alignment(uint32_t a) { alignment_ = a; }
  // Writes the file atomically. `progress_label` empty: no progress line.
  void write(const std::string& path, const std::string& progress_label = "writing") const;

 private:
  struct Entry {
    std::string key;
    GgufValue value;
  };
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    Producer produce;
  };
  std::vector<Entry> kv_;
  std::vector<Pending> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace strata
