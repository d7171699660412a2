#include "formats/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "core/error.h"

namespace strata {
namespace {

using json = nlohmann::json;

std::optional<DType> st_dtype(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  if (s == "I64") return DType::I64;
  if (s == "I32") return DType::I32;
  if (s == "I16") return DType::I16;
  if (s == "I8") return DType::I8;
  return std::nullopt;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path, int file_index) {
  SafetensorsFile out;
  out.file = std::make_shared<MappedFile>(path);
  const MappedFile& f = *out.file;
  if (f.size() < 8)
    fail("{}: not a safetensors file (shorter than its 8-byte header length)", path);
  uint64_t hlen;
  std::memcpy(&hlen, f.data(), 8);
  if (hlen > f.size() - 8 || hlen > (100ull << 20))
    fail("{}: header length {} does not fit in the file ({} bytes)", path, hlen, f.size());
  const char* h = reinterpret_cast<const char*>(f.data() + 8);
  json j;
  try {
    j = json::parse(h, h + hlen);
  } catch (const json::exception& e) {
    fail("{}: the header is not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: the header is not a JSON object", path);
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = f.size() - data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const json& e = it.value();
    const std::string& name = it.key();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      fail("{}: tensor '{}' lacks dtype, shape or data_offsets", path, name);
    if (!e["dtype"].is_string()) fail("{}: tensor '{}' dtype is not a string", path, name);
    const std::string ds = e["dtype"].get<std::string>();
    const auto dt = st_dtype(ds);
    if (!dt) fail("{}: tensor '{}' has dtype {}, which strata does not support", path, name, ds);
    TensorInfo ti;
    ti.name = name;
    ti.dtype = *dt;
    ti.file = file_index;
    if (!e["shape"].is_array()) fail("{}: tensor '{}' shape is not an array", path, name);
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}' has a non-integer dimension", path, name);
      const uint64_t n = d.get<uint64_t>();
      if (n > (1ull << 40) || (n && numel > (1ull << 50) / n))
        fail("{}: tensor '{}' has an absurd dimension {}", path, name, n);
      numel *= n;
      ti.shape.push_back(static_cast<int64_t>(n));
    }
    if (ti.shape.size() > 8) fail("{}: tensor '{}' has {} dimensions", path, name, ti.shape.size());
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail("{}: tensor '{}' data_offsets must be two unsigned integers", path, name);
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      fail("{}: tensor '{}' data_offsets [{}, {}] run past the data section ({} bytes)", path, name,
           b, en, data_size);
    const uint64_t want = numel * static_cast<uint64_t>(dtype_info(*dt).block_bytes);
    if (en - b != want)
      fail("{}: tensor '{}' has {} bytes but shape {} of {} needs {}", path, name, en - b,
           shape_to_string(ti.shape), ds, want);
    ti.offset = data_start + b;
    ti.nbytes = want;
    out.tensors.push_back(std::move(ti));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
  return out;
}

SafetensorsSet read_safetensors_dir(const std::string& dir) {
  SafetensorsSet set;
  std::vector<std::string> shards;
  const std::string index = dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    json j;
    try {
      j = json::parse(read_text_file(index));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", index, e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail("{}: has no weight_map object", index);
    std::set<std::string> uniq;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail("{}: weight_map['{}'] is not a file name", index, it.key());
      const std::string s = it.value().get<std::string>();
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        fail("{}: shard name '{}' must be a plain file name", index, s);
      uniq.insert(s);
    }
    shards.assign(uniq.begin(), uniq.end());
  } else if (file_exists(dir + "/model.safetensors")) {
    shards.push_back("model.safetensors");
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json", dir);
  }
  std::set<std::string> names;
  for (size_t i = 0; i < shards.size(); ++i) {
    SafetensorsFile sf = read_safetensors(dir + "/" + shards[i], static_cast<int>(i));
    set.files.push_back(sf.file);
    for (auto& t : sf.tensors) {
      if (!names.insert(t.name).second)
        fail("{}: tensor '{}' appears in more than one shard", dir, t.name);
      set.tensors.push_back(std::move(t));
    }
  }
  return set;
}

}  // namespace strata
