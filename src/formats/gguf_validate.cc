#include "formats/gguf_validate.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "formats/byte_reader.h"
#include "formats/gguf.h"

namespace strata {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint64_t kMaxName = 64;        // ggml's char name[GGML_MAX_NAME], NUL included
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxDepth = 8;

struct Geometry {
  uint32_t id;
  int64_t elems, bytes;
};

// ggml's type table (block elements, block bytes); ids 4, 5 (Q4_2/Q4_3) and 36..38 were removed.
constexpr Geometry kGeometry[] = {
    {0, 1, 4},      {1, 1, 2},      {2, 32, 18},   {3, 32, 20},    {6, 32, 22},    {7, 32, 24},
    {8, 32, 34},    {9, 32, 36},    {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176},
    {14, 256, 210}, {15, 256, 292}, {16, 256, 66}, {17, 256, 74},  {18, 256, 98},  {19, 256, 50},
    {20, 32, 18},   {21, 256, 110}, {22, 256, 82}, {23, 256, 136}, {24, 1, 1},     {25, 1, 2},
    {26, 1, 4},     {27, 1, 8},     {28, 1, 8},    {29, 256, 56},  {30, 1, 2},     {31, 32, 18},
    {32, 32, 18},   {33, 32, 18},   {34, 256, 54}, {35, 256, 66},  {39, 32, 17},
};

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

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
      return true;
    default:
      return false;
  }
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    const unsigned char c = p[i];
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + static_cast<size_t>(k) >= s.size() || (p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

bool lower_snake_key(const std::string& k) {
  if (k.empty() || k.front() == '.' || k.back() == '.') return false;
  char prev = 0;
  for (char c : k) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 80))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return s.size() > 80 ? out + "..." : out;
}

struct TensorEntry {
  std::string name;
  uint32_t type = 0;
  std::vector<uint64_t> ne;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  bool size_known = false;
};

struct Stop {};  // the header cannot be read any further

class Checker {
 public:
  Checker(const uint8_t* data, uint64_t size, GgufValidation& v)
      : data_(data), size_(size), r_(data, size, v.path), v_(v) {}

  void run() {
    try {
      header();
    } catch (const Stop&) {
      return;
    } catch (const Error& e) {
      // ByteReader ran off the end: the header is truncated or a length field is wrong.
      problem("{}", e.what());
      return;
    }
    layout();
  }

 private:
  template <class... A>
  void problem(fmt::format_string<A...> f, A&&... a) {
    v_.problems.push_back(fmt::format(f, std::forward<A>(a)...));
  }
  template <class... A>
  void warning(fmt::format_string<A...> f, A&&... a) {
    v_.warnings.push_back(fmt::format(f, std::forward<A>(a)...));
  }

  // Reads one value, checking it; `where` names the key for messages.
  GgufValue value(GgufType t, const std::string& where, int depth) {
    GgufValue v;
    v.type = t;
    if (gguf_read_number(r_, t, v)) return v;
    switch (t) {
      case GgufType::BOOL: {
        const uint8_t b = r_.read<uint8_t>("bool");
        if (b > 1)
          problem("key '{}': bool value {} at offset {} is neither 0 nor 1", where, b,
                  r_.pos() - 1);
        v.i = b;
        break;
      }
      case GgufType::STRING: {
        const uint64_t len = r_.read<uint64_t>("string length");
        v.s = r_.read_string(len, "string");
        if (!valid_utf8(v.s) && ++bad_utf8_ <= 5)
          warning("key '{}': a string at offset {} is not valid UTF-8", where, r_.pos() - len);
        break;
      }
      case GgufType::ARRAY: {
        if (depth >= kMaxDepth) fail("key '{}': arrays nested deeper than {}", where, kMaxDepth);
        const uint32_t et = r_.read<uint32_t>("array element type");
        if (et > 12)
          fail("key '{}': unknown array element type {} at offset {}", where, et, r_.pos() - 4);
        v.elem = static_cast<GgufType>(et);
        const uint64_t n = r_.read<uint64_t>("array length");
        if (n > r_.remaining() / gguf_min_value_bytes(v.elem))
          fail("key '{}': array of {} {} at offset {} cannot fit in the {} bytes left", where, n,
               gguf_type_name(v.elem), r_.pos() - 8, r_.remaining());
        for (uint64_t k = 0; k < n; ++k) {
          GgufValue e = value(v.elem, where, depth + 1);
          if (v.elem == GgufType::STRING)
            v.strs.push_back(std::move(e.s));
          else if (v.elem == GgufType::ARRAY)
            v.items.push_back(std::move(e));
          else if (v.elem == GgufType::F32 || v.elem == GgufType::F64)
            v.floats.push_back(e.f);
          else
            v.ints.push_back(e.i);
        }
        break;
      }
      default:  // the fixed-width numbers, read above
        break;
    }
    return v;
  }

  void header() {
    if (size_ < 4 || r_.read<uint32_t>("magic") != kMagic) {
      problem("not a GGUF file: the first four bytes are not 'GGUF'");
      throw Stop{};
    }
    v_.version = r_.read<uint32_t>("version");
    if (v_.version > 0xffff) {
      problem("version field {:#x}: a big-endian GGUF file (only little-endian is supported)",
              v_.version);
      throw Stop{};
    }
    if (v_.version != 2 && v_.version != 3) {
      problem("GGUF version {} (only 2 and 3 are valid)", v_.version);
      throw Stop{};
    }
    v_.n_tensors = r_.read<uint64_t>("tensor count");
    v_.n_kv = r_.read<uint64_t>("metadata count");
    if (v_.n_kv > r_.remaining() / 13) {
      problem("metadata count {} cannot fit in a file of {} bytes (truncated or damaged header)",
              v_.n_kv, size_);
      throw Stop{};
    }
    if (v_.n_tensors > r_.remaining() / 28) {
      problem("tensor count {} cannot fit in a file of {} bytes (truncated or damaged header)",
              v_.n_tensors, size_);
      throw Stop{};
    }
    for (uint64_t k = 0; k < v_.n_kv; ++k) {
      const uint64_t at = r_.pos();
      const uint64_t klen = r_.read<uint64_t>("key length");
      if (klen == 0) problem("metadata entry {} at offset {} has an empty key", k, at);
      if (klen > 65535)
        problem("metadata entry {} at offset {} has a key of {} bytes (max 65535)", k, at, klen);
      std::string key = r_.read_string(klen, "key");
      if (!lower_snake_key(key))
        warning("key '{}' is not lower_snake_case words separated by dots", printable(key));
      const uint32_t t = r_.read<uint32_t>("value type");
      if (t > 12) fail("key '{}' at offset {} has unknown value type {}", printable(key), at, t);
      GgufValue val = value(static_cast<GgufType>(t), printable(key), 0);
      if (kv_.count(key))
        problem("duplicate key '{}' at offset {}", printable(key), at);
      else
        kv_.emplace(std::move(key), std::move(val));
    }
    keys();
    for (uint64_t k = 0; k < v_.n_tensors; ++k) tensor_info(k);
    v_.data_offset = align_up(r_.pos(), v_.alignment);
  }

  // Types of the keys whose meaning the format itself fixes.
  void keys() {
    auto find = [&](const std::string& k) -> const GgufValue* {
      auto it = kv_.find(k);
      return it == kv_.end() ? nullptr : &it->second;
    };
    const GgufValue* arch = find("general.architecture");
    if (!arch)
      problem("general.architecture is missing");
    else if (arch->type != GgufType::STRING)
      problem("general.architecture is a {}, not a string", gguf_type_name(arch->type));
    if (const GgufValue* a = find("general.alignment")) {
      if (a->type != GgufType::U32) {
        problem("general.alignment is a {}, not a u32", gguf_type_name(a->type));
      } else if (a->i == 0 || (a->i & (a->i - 1)) != 0) {
        problem("general.alignment {} is not a power of two", a->i);
      } else {
        v_.alignment = static_cast<uint64_t>(a->i);
      }
    }
    for (const char* k : {"general.quantization_version", "general.file_type"})
      if (const GgufValue* x = find(k); x && x->type != GgufType::U32)
        warning("{} is a {}, not a u32", k, gguf_type_name(x->type));
    if (arch && arch->type == GgufType::STRING) {
      const std::string p = arch->s + ".";
      for (const char* k :
           {"context_length", "embedding_length", "block_count", "feed_forward_length",
            "attention.head_count", "attention.head_count_kv", "attention.key_length",
            "rope.dimension_count"})
        if (const GgufValue* x = find(p + k); x && !is_int_type(x->type))
          problem("{}{} is a {}, not an integer", p, k, gguf_type_name(x->type));
      for (const char* k :
           {"attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon", "rope.freq_base"})
        if (const GgufValue* x = find(p + k);
            x && x->type != GgufType::F32 && x->type != GgufType::F64)
          problem("{}{} is a {}, not a float", p, k, gguf_type_name(x->type));
    }
    // The tokenizer arrays: element types, and one entry per token.
    const GgufValue* toks = find("tokenizer.ggml.tokens");
    if (const GgufValue* m = find("tokenizer.ggml.model"); m && m->type != GgufType::STRING)
      problem("tokenizer.ggml.model is a {}, not a string", gguf_type_name(m->type));
    if (toks && !(toks->is_array() && toks->elem == GgufType::STRING)) {
      problem("tokenizer.ggml.tokens is not an array of strings");
      toks = nullptr;
    }
    if (const GgufValue* m = find("tokenizer.ggml.merges");
        m && !(m->is_array() && m->elem == GgufType::STRING))
      problem("tokenizer.ggml.merges is not an array of strings");
    struct PerToken {
      const char* key;
      bool floats;
    };
    for (PerToken pt :
         {PerToken{"tokenizer.ggml.scores", true}, PerToken{"tokenizer.ggml.token_type", false}}) {
      const GgufValue* x = find(pt.key);
      if (!x) continue;
      const bool ok =
          x->is_array() && (pt.floats ? (x->elem == GgufType::F32 || x->elem == GgufType::F64)
                                      : is_int_type(x->elem));
      if (!ok)
        problem("{} is not an array of {}", pt.key, pt.floats ? "floats" : "integers");
      else if (toks && x->array_size() != toks->array_size())
        problem("{} has {} entries but tokenizer.ggml.tokens has {}", pt.key, x->array_size(),
                toks->array_size());
    }
    for (const char* k : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"}) {
      const GgufValue* x = find(k);
      if (!x) continue;
      if (!is_int_type(x->type))
        problem("{} is a {}, not an integer", k, gguf_type_name(x->type));
      else if (toks && (x->i < 0 || static_cast<uint64_t>(x->i) >= toks->array_size()) &&
               x->i != 0xFFFFFFFF)
        warning("{} = {} is outside the {} tokens", k, x->i, toks->array_size());
    }
  }

  void tensor_info(uint64_t k) {
    TensorEntry t;
    const uint64_t at = r_.pos();
    const uint64_t nlen = r_.read<uint64_t>("tensor name length");
    t.name = r_.read_string(nlen, "tensor name");
    const std::string shown = printable(t.name);
    if (t.name.empty()) problem("tensor {} (offset {}) has an empty name", k, at);
    if (nlen >= kMaxName)
      problem("tensor '{}': name of {} bytes; ggml allows at most {}", shown, nlen, kMaxName - 1);
    if (!names_.insert(t.name).second) problem("duplicate tensor name '{}'", shown);
    const uint32_t nd = r_.read<uint32_t>("tensor dimension count");
    if (nd > kMaxDims) {
      problem("tensor '{}' has {} dimensions (at most {})", shown, nd, kMaxDims);
      fail("cannot read further: the tensor index is damaged at offset {}", at);
    }
    if (nd == 0) warning("tensor '{}' has no dimensions", shown);
    uint64_t numel = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = r_.read<uint64_t>("tensor dimension");
      t.ne.push_back(n);
      if (n == 0) warning("tensor '{}' has a zero dimension", shown);
      if (n > 0 && numel > (uint64_t(INT64_MAX) / n))
        overflow = true;
      else
        numel *= n;
    }
    if (overflow) problem("tensor '{}': the element count overflows 64 bits", shown);
    t.type = r_.read<uint32_t>("tensor type");
    t.offset = r_.read<uint64_t>("tensor offset");
    int64_t be = 0, bb = 0;
    if (!ggml_block_geometry(t.type, &be, &bb)) {
      problem("tensor '{}' has unknown type id {}", shown, t.type);
    } else if (!t.ne.empty() && t.ne[0] % static_cast<uint64_t>(be) != 0) {
      problem(
          "tensor '{}' of type {}: a row of {} elements is not a whole number of {}-element blocks",
          shown, ggml_type_name(t.type), t.ne[0], be);
    } else if (!overflow) {
      t.nbytes = numel / static_cast<uint64_t>(be) * static_cast<uint64_t>(bb);
      t.size_known = true;
    }
    tensors_.push_back(std::move(t));
  }

  bool zeros(uint64_t from, uint64_t to) const {
    for (uint64_t i = from; i < to && i < size_; ++i)
      if (data_[i]) return false;
    return true;
  }

  void layout() {
    const uint64_t header_end = r_.pos();
    const uint64_t A = v_.alignment;
    if (tensors_.empty()) {
      // Nothing may follow the header but its alignment padding.
      if (size_ > v_.data_offset)
        problem("{} bytes of trailing data after the header (no tensors)", size_ - v_.data_offset);
      return;
    }
    if (v_.data_offset > size_) {
      problem("truncated: the data section would start at {} but the file has {} bytes",
              v_.data_offset, size_);
      return;
    }
    if (!zeros(header_end, v_.data_offset))
      warning("the padding between the header and the data section is not zero");
    const uint64_t data_size = size_ - v_.data_offset;
    // ggml's reader: tensor i sits exactly where the padded sizes of tensors 0..i-1 end.
    uint64_t expected = 0;
    bool known = true;
    for (const TensorEntry& t : tensors_) {
      const std::string n = printable(t.name);
      if (t.offset % A != 0)
        problem("tensor '{}': offset {} is not a multiple of the alignment {}", n, t.offset, A);
      if (known && t.offset != expected) {
        if (t.offset > expected)
          problem(
              "tensor '{}' starts at data offset {}; the previous tensor's padded end is {} ({} "
              "unused bytes)",
              n, t.offset, expected, t.offset - expected);
        else
          problem(
              "tensor '{}' starts at data offset {}, before the previous tensor's padded end {} "
              "(overlap or out of order)",
              n, t.offset, expected);
      }
      if (!t.size_known) {
        known = false;
        continue;
      }
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        problem(
            "tensor '{}' ({} bytes at data offset {}) runs past the end of the file (data section "
            "has {} bytes)",
            n, t.nbytes, t.offset, data_size);
      expected = t.offset + align_up(t.nbytes, A);
      known = true;
    }
    // Overlaps, whatever the index order.
    std::vector<const TensorEntry*> by_off;
    for (const auto& t : tensors_)
      if (t.size_known) by_off.push_back(&t);
    std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    uint64_t end = 0;
    const TensorEntry* last = nullptr;
    for (const TensorEntry* t : by_off) {
      if (last && t->offset < end && t->nbytes > 0)
        problem("tensors '{}' and '{}' overlap (data bytes {}..{} and {}..{})",
                printable(last->name), printable(t->name), last->offset, end, t->offset,
                t->offset + t->nbytes);
      else if (last && t->offset > end &&
               !zeros(v_.data_offset + end, std::min(v_.data_offset + t->offset, size_)))
        warning("the padding before tensor '{}' is not zero", printable(t->name));
      if (t->offset + t->nbytes >= end) {
        end = t->offset + t->nbytes;
        last = t;
      }
    }
    v_.data_end = v_.data_offset + end;
    if (!known || end > data_size) return;  // sizes unknown or already reported truncated
    const uint64_t padded_end = v_.data_offset + align_up(end, A);
    if (size_ > padded_end)
      problem(
          "{} bytes of trailing data after the last tensor (its data ends at {}, padded to {}; the "
          "file has {})",
          size_ - padded_end, v_.data_end, padded_end, size_);
    else if (!zeros(v_.data_end, size_))
      warning("the padding after the last tensor is not zero");
  }

  const uint8_t* data_;
  uint64_t size_;
  ByteReader r_;
  GgufValidation& v_;
  std::map<std::string, GgufValue> kv_;
  std::set<std::string> names_;
  std::vector<TensorEntry> tensors_;
  int bad_utf8_ = 0;
};

}  // namespace

bool ggml_block_geometry(uint32_t type, int64_t* block_elems, int64_t* block_bytes) {
  for (const auto& g : kGeometry)
    if (g.id == type) {
      *block_elems = g.elems;
      *block_bytes = g.bytes;
      return true;
    }
  return false;
}

GgufValidation validate_gguf_bytes(const uint8_t* data, uint64_t size, const std::string& name) {
  GgufValidation v;
  v.path = name;
  Checker c(data, size, v);
  c.run();
  return v;
}

GgufValidation validate_gguf(const std::string& path) {
  std::unique_ptr<MappedFile> f;
  try {
    f = std::make_unique<MappedFile>(path);
  } catch (const Error& e) {
    GgufValidation v;
    v.path = path;
    v.problems.push_back(e.what());
    return v;
  }
  return validate_gguf_bytes(f->data(), f->size(), path);
}

}  // namespace strata
