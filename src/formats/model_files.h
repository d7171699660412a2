// A model on disk, whatever its format: a single GGUF file, or a Hugging Face folder
// (config.json + safetensors, single or sharded, + tokenizer files). Gives the tensor index and
// the raw metadata; what the metadata means is the model layer's business.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"
#include "formats/gguf.h"

namespace strata {

struct ModelFiles {
  enum class Kind { Gguf, HfDir };
  Kind kind = Kind::Gguf;
  std::string path;                                // the .gguf file or the folder
  std::vector<std::shared_ptr<MappedFile>> files;  // TensorInfo::file indexes this
  std::vector<TensorInfo> tensors;                 // in file order
  std::shared_ptr<GgufFile> gguf;                  // Kind::Gguf
  nlohmann::json hf_config;                        // Kind::HfDir: config.json
  nlohmann::json generation_config;                // generation_config.json if present
  nlohmann::json tokenizer_config;                 // tokenizer_config.json if present

  const TensorInfo* find(const std::string& name) const;
  uint64_t total_tensor_bytes() const;
  // Bytes of a tensor's data (mapped; nothing is copied).
  const uint8_t* tensor_data(const TensorInfo& t) const;

 private:
  std::map<std::string, size_t> by_name_;
  friend ModelFiles open_model_files(const std::string& path);
};

// Opens and validates the model's files (no tensor data is read). Clear errors for a missing
// path, a file that is not GGUF, or a folder without config.json / safetensors.
ModelFiles open_model_files(const std::string& path);

}  // namespace strata
