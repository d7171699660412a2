#include "formats/gguf.h"

#include <fmt/format.h>

#include "core/error.h"
#include "formats/byte_reader.h"

namespace strata {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;

bool is_int_type(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::BOOL:
      return true;
    default:
      return false;
  }
}

}  // namespace

uint64_t gguf_min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
    case GgufType::STRING:
      return 8;
    case GgufType::ARRAY:
      return 12;
  }
  return 1;
}

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "?";
}

uint64_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  if (elem == GgufType::STRING) return strs.size();
  if (elem == GgufType::ARRAY) return items.size();
  if (elem == GgufType::F32 || elem == GgufType::F64) return floats.size();
  return ints.size();
}

std::string GgufValue::to_string(size_t max_items) const {
  switch (type) {
    case GgufType::STRING: {
      std::string t = s.size() > 60 ? s.substr(0, 60) + "..." : s;
      for (auto& c : t)
        if (c == '\n') c = ' ';
      return "\"" + t + "\"";
    }
    case GgufType::F32:
    case GgufType::F64:
      return fmt::format("{}", f);
    case GgufType::BOOL:
      return i ? "true" : "false";
    case GgufType::U64:
      return fmt::format("{}", static_cast<uint64_t>(i));
    case GgufType::ARRAY: {
      const uint64_t n = array_size();
      std::string out = fmt::format("[{} x {}]", n, gguf_type_name(elem));
      if (elem != GgufType::ARRAY && n > 0) {
        out += " {";
        for (uint64_t k = 0; k < n && k < max_items; ++k) {
          if (k) out += ", ";
          if (elem == GgufType::STRING)
            out += "\"" + strs[k] + "\"";
          else if (elem == GgufType::F32 || elem == GgufType::F64)
            out += fmt::format("{}", floats[k]);
          else
            out += fmt::format("{}", ints[k]);
        }
        out += n > max_items ? ", ...}" : "}";
      }
      return out;
    }
    default:
      return fmt::format("{}", i);
  }
}

bool gguf_read_number(ByteReader& r, GgufType t, GgufValue& v) {
  switch (t) {
    case GgufType::U8:
      v.i = r.read<uint8_t>("u8 value");
      break;
    case GgufType::I8:
      v.i = r.read<int8_t>("i8 value");
      break;
    case GgufType::U16:
      v.i = r.read<uint16_t>("u16 value");
      break;
    case GgufType::I16:
      v.i = r.read<int16_t>("i16 value");
      break;
    case GgufType::U32:
      v.i = r.read<uint32_t>("u32 value");
      break;
    case GgufType::I32:
      v.i = r.read<int32_t>("i32 value");
      break;
    case GgufType::U64:
      v.i = static_cast<int64_t>(r.read<uint64_t>("u64 value"));
      break;
    case GgufType::I64:
      v.i = r.read<int64_t>("i64 value");
      break;
    case GgufType::F32:
      v.f = r.read<float>("f32 value");
      break;
    case GgufType::F64:
      v.f = r.read<double>("f64 value");
      break;
    default:
      return false;
  }
  return true;
}

GgufValue GgufFile::read_value(ByteReader& r, GgufType t, int depth) {
  GgufValue v;
  v.type = t;
  if (gguf_read_number(r, t, v)) return v;
  switch (t) {
    case GgufType::BOOL: {
      const uint8_t b = r.read<uint8_t>("bool value");
      if (b > 1)
        fail("{}: bool value {} at offset {} is neither 0 nor 1", r.source(), b, r.pos() - 1);
      v.i = b;
      break;
    }
    case GgufType::STRING: {
      const uint64_t len = r.read<uint64_t>("string length");
      v.s = r.read_string(len, "string");
      break;
    }
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        fail("{}: arrays nested deeper than {}", r.source(), kMaxArrayDepth);
      const uint32_t et = r.read<uint32_t>("array element type");
      if (et > 12)
        fail("{}: unknown array element type {} at offset {}", r.source(), et, r.pos() - 4);
      v.elem = static_cast<GgufType>(et);
      const uint64_t n = r.read<uint64_t>("array length");
      if (n > r.remaining() / gguf_min_value_bytes(v.elem))
        fail("{}: array of {} {} elements at offset {} cannot fit in the {} bytes left", r.source(),
             n, gguf_type_name(v.elem), r.pos() - 8, r.remaining());
      if (v.elem == GgufType::STRING) {
        v.strs.reserve(n);
        for (uint64_t k = 0; k < n; ++k) {
          const uint64_t len = r.read<uint64_t>("string length");
          v.strs.push_back(r.read_string(len, "array string"));
        }
      } else if (v.elem == GgufType::ARRAY) {
        for (uint64_t k = 0; k < n; ++k)
          v.items.push_back(read_value(r, GgufType::ARRAY, depth + 1));
      } else if (v.elem == GgufType::F32 || v.elem == GgufType::F64) {
        v.floats.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.floats.push_back(read_value(r, v.elem, depth + 1).f);
      } else {
        v.ints.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.ints.push_back(read_value(r, v.elem, depth + 1).i);
      }
      break;
    }
    default:
      fail("{}: unknown value type {} at offset {}", r.source(), static_cast<uint32_t>(t), r.pos());
  }
  return v;
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  ByteReader r(file_->data(), file_->size(), path);
  if (file_->size() < 4 || r.read<uint32_t>("magic") != kMagic)
    fail("{}: not a GGUF file (the first four bytes are not 'GGUF')", path);
  version_ = r.read<uint32_t>("version");
  if (version_ == 1) fail("{}: GGUF version 1 is obsolete; convert the model again", path);
  if (version_ > 0xffff) fail("{}: big-endian GGUF files are not supported", path);
  if (version_ != 2 && version_ != 3) fail("{}: unsupported GGUF version {}", path, version_);
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Each metadata entry needs at least 8+4+1 bytes, each tensor entry at least 8+4+8+4+8.
  if (n_kv > r.remaining() / 13)
    fail("{}: metadata count {} is impossible for the file size", path, n_kv);
  if (n_tensors > r.remaining() / 32)
    fail("{}: tensor count {} is impossible for the file size", path, n_tensors);

  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t at = r.pos();
    const uint64_t klen = r.read<uint64_t>("key length");
    std::string key = r.read_string(klen, "key");
    const uint32_t t = r.read<uint32_t>("value type");
    if (t > 12) fail("{}: key '{}' at offset {} has unknown value type {}", path, key, at, t);
    GgufValue v = read_value(r, static_cast<GgufType>(t), 0);
    if (kv_.count(key)) fail("{}: duplicate key '{}' at offset {}", path, key, at);
    key_order_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!is_int_type(a->type) || a->i <= 0 || (a->i & (a->i - 1)) != 0 || a->i > (1 << 20))
      fail("{}: general.alignment must be a power of two, got {}", path, a->to_string());
    alignment_ = static_cast<uint64_t>(a->i);
  }

  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    const uint64_t nlen = r.read<uint64_t>("tensor name length");
    t.name = r.read_string(nlen, "tensor name");
    const uint32_t nd = r.read<uint32_t>("tensor dimension count");
    if (nd == 0 || nd > kMaxDims)
      fail("{}: tensor '{}' has {} dimensions (1..{} allowed)", path, t.name, nd, kMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = r.read<uint64_t>("tensor dimension");
      if (n == 0 || n > (1ull << 40) || numel > (1ull << 50) / n)
        fail("{}: tensor '{}' has an absurd dimension {} = {}", path, t.name, d, n);
      numel *= n;
      t.ne.push_back(static_cast<int64_t>(n));
    }
    t.ggml_type = r.read<uint32_t>("tensor type");
    t.offset = r.read<uint64_t>("tensor offset");
    t.dtype = dtype_from_ggml(t.ggml_type);
    if (t.dtype) {
      const DTypeInfo& info = dtype_info(*t.dtype);
      if (t.ne[0] % info.block_elems != 0)
        fail("{}: tensor '{}' of type {} has a row of {} elements, not a multiple of {}", path,
             t.name, info.name, t.ne[0], info.block_elems);
      t.nbytes =
          numel / static_cast<uint64_t>(info.block_elems) * static_cast<uint64_t>(info.block_bytes);
    }
    if (t.offset % alignment_ != 0)
      fail("{}: tensor '{}' offset {} is not aligned to {}", path, t.name, t.offset, alignment_);
    tensors_.push_back(std::move(t));
  }
  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_offset_ > file_->size() && n_tensors > 0)
    fail("{}: truncated: the data section would start at {} but the file has {} bytes", path,
         data_offset_, file_->size());
  const uint64_t data_size = file_->size() >= data_offset_ ? file_->size() - data_offset_ : 0;
  std::map<std::string, int> seen;
  for (const auto& t : tensors_) {
    if (seen[t.name]++) fail("{}: duplicate tensor name '{}'", path, t.name);
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(
          "{}: tensor '{}' ({} bytes at data offset {}) runs past the end of the file (data "
          "section has {} bytes)",
          path, t.name, t.nbytes, t.offset, data_size);
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::at(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  return *v;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = at(key);
  if (!is_int_type(v.type))
    fail("{}: key '{}' should be an integer, is {}", path(), key, gguf_type_name(v.type));
  return v.i;
}
int64_t GgufFile::get_int(const std::string& key, int64_t def) const {
  return has(key) ? get_int(key) : def;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type == GgufType::F32 || v.type == GgufType::F64) return v.f;
  if (is_int_type(v.type)) return static_cast<double>(v.i);
  fail("{}: key '{}' should be a number, is {}", path(), key, gguf_type_name(v.type));
}
double GgufFile::get_float(const std::string& key, double def) const {
  return has(key) ? get_float(key) : def;
}

bool GgufFile::get_bool(const std::string& key, bool def) const {
  if (!has(key)) return def;
  const GgufValue& v = at(key);
  if (!is_int_type(v.type))
    fail("{}: key '{}' should be a bool, is {}", path(), key, gguf_type_name(v.type));
  return v.i != 0;
}

std::string GgufFile::get_str(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::STRING)
    fail("{}: key '{}' should be a string, is {}", path(), key, gguf_type_name(v.type));
  return v.s;
}
std::string GgufFile::get_str(const std::string& key, const std::string& def) const {
  return has(key) ? get_str(key) : def;
}

const std::vector<std::string>& GgufFile::get_strs(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufType::ARRAY || v.elem != GgufType::STRING)
    fail("{}: key '{}' should be an array of strings", path(), key);
  return v.strs;
}

std::vector<TensorInfo> GgufFile::tensor_infos(int file_index) const {
  std::vector<TensorInfo> out;
  out.reserve(tensors_.size());
  for (const auto& t : tensors_) {
    if (!t.dtype)
      fail("{}: tensor '{}' has type {}, which strata cannot compute with", path(), t.name,
           ggml_type_name(t.ggml_type));
    TensorInfo ti;
    ti.name = t.name;
    ti.dtype = *t.dtype;
    ti.shape.assign(t.ne.rbegin(), t.ne.rend());
    ti.file = file_index;
    ti.offset = data_offset_ + t.offset;
    ti.nbytes = t.nbytes;
    out.push_back(std::move(ti));
  }
  return out;
}

}  // namespace strata
