// GGUF v2/v3 reader: header, metadata of every value type (arrays and nested arrays included),
// alignment and the tensor index. Every count, length, dimension and offset is checked against
// the file size before it is used. Tensor data is not read here: callers get TensorInfo with
// absolute offsets and take the bytes from the mapped file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"

namespace strata {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType t);
// The fewest bytes one value of type t takes in a file (a string: its 8-byte length; an array:
// element type and count): bounds an array's count by the bytes left before reading it.
uint64_t gguf_min_value_bytes(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem = GgufType::U8;  // element type, for arrays
  // Scalars: integers (and bools) in `i` (u64 values above INT64_MAX keep their bits), floats in
  // `f`, strings in `s`. Arrays: integer elements in `ints`, float elements in `floats`, strings in
  // `strs`, nested arrays in `items`.
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strs;
  std::vector<GgufValue> items;

  bool is_array() const { return type == GgufType::ARRAY; }
  uint64_t array_size() const;
  std::string to_string(size_t max_items = 8) const;  // for `strata info`
};

struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::optional<DType> dtype;  // nullopt: a GGML type strata does not compute with
  std::vector<int64_t> ne;     // GGUF order: ne[0] is the innermost dimension
  uint64_t offset = 0;         // relative to the data section
  uint64_t nbytes = 0;         // 0 when the type is unknown to strata
};

// Reads one fixed-width number (U8 to I64, F32, F64) into v.i or v.f; false, reading nothing,
// for BOOL, STRING and ARRAY, whose checks differ between the reader and the strict validator.
bool gguf_read_number(class ByteReader& r, GgufType t, GgufValue& v);

class GgufFile {
 public:
  // Parses and validates; throws strata::Error with the file name and offset on any problem.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const MappedFile& file() const { return *file_; }
  std::shared_ptr<MappedFile> mapped() const { return file_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<std::string>& keys() const { return key_order_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  const GgufValue& at(const std::string& key) const;  // throws if missing

  // Typed getters; they throw naming the key if it is missing or of the wrong kind.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_str(const std::string& key) const;
  std::string get_str(const std::string& key, const std::string& def) const;
  const std::vector<std::string>& get_strs(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // The tensor index in strata's terms (outermost dimension first, absolute offsets). Throws if a
  // tensor has a GGML type strata cannot compute with, naming the type.
  std::vector<TensorInfo> tensor_infos(int file_index = 0) const;

 private:
  GgufValue read_value(class ByteReader& r, GgufType t, int depth);
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace strata
