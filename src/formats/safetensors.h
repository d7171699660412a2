// safetensors reader: an 8-byte header length, a JSON header, then raw little-endian tensor data.
// Single files and sharded folders (model.safetensors.index.json). Every entry's dtype, shape
// and data_offsets are checked against each other and the file size.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"

namespace strata {

struct SafetensorsFile {
  std::shared_ptr<MappedFile> file;
  std::vector<TensorInfo> tensors;  // offsets absolute in `file`; TensorInfo::file is set by caller
};

SafetensorsFile read_safetensors(const std::string& path, int file_index);

// All tensors of a Hugging Face folder: model.safetensors, or the shards listed in
// model.safetensors.index.json. Tensor names must be unique across shards.
struct SafetensorsSet {
  std::vector<std::shared_ptr<MappedFile>> files;
  std::vector<TensorInfo> tensors;
};
SafetensorsSet read_safetensors_dir(const std::string& dir);

}  // namespace strata
