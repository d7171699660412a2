#include "formats/model_files.h"

#include "core/error.h"
#include "formats/safetensors.h"

namespace strata {
namespace {

nlohmann::json read_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace

const TensorInfo* ModelFiles::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors[it->second];
}

uint64_t ModelFiles::total_tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.nbytes;
  return n;
}

const uint8_t* ModelFiles::tensor_data(const TensorInfo& t) const {
  return files.at(static_cast<size_t>(t.file))->range(t.offset, t.nbytes, t.name.c_str());
}

ModelFiles open_model_files(const std::string& path) {
  ModelFiles m;
  m.path = path;
  if (!file_exists(path)) fail("model not found: '{}'", path);
  if (is_directory(path)) {
    m.kind = ModelFiles::Kind::HfDir;
    const std::string cfg = path + "/config.json";
    if (!file_exists(cfg))
      fail("'{}' is a folder without config.json: not a Hugging Face model folder", path);
    m.hf_config = read_json_file(cfg);
    if (!m.hf_config.is_object()) fail("{}: config.json is not a JSON object", path);
    if (file_exists(path + "/generation_config.json"))
      m.generation_config = read_json_file(path + "/generation_config.json");
    if (file_exists(path + "/tokenizer_config.json"))
      m.tokenizer_config = read_json_file(path + "/tokenizer_config.json");
    SafetensorsSet set = read_safetensors_dir(path);
    m.files = std::move(set.files);
    m.tensors = std::move(set.tensors);
  } else {
    m.kind = ModelFiles::Kind::Gguf;
    m.gguf = std::make_shared<GgufFile>(path);
    m.files.push_back(m.gguf->mapped());
    m.tensors = m.gguf->tensor_infos(0);
  }
  for (size_t i = 0; i < m.tensors.size(); ++i) m.by_name_[m.tensors[i].name] = i;
  return m;
}

}  // namespace strata
