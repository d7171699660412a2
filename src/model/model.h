// A loaded model: its files, its spec (architecture + hyper-parameters) and its weights in a
// WeightStore under canonical names. Matrices are read into one RAM arena on huge pages (or, with
// LoadOptions::mmap, left in the mapped file), copied with their layout fixed where the source
// needs it, or left on the disk tier for the scheduler (lazy_matrices); vectors (norms, biases)
// are widened to f32 copies.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/progress.h"
#include "formats/model_files.h"
#include "memory/weight_store.h"
#include "model/hparams.h"
#include "model/tensor_names.h"
#include "model/weights.h"

namespace strata {

struct LoadOptions {
  bool progress = true;
  // Matrices get no data: they are registered on the disk tier with their source, for the
  // scheduler to place (read into RAM, stream, compress). Vectors are still widened to f32.
  bool lazy_matrices = false;
  // Matrices stay views into the memory-mapped file (nothing read at load, pages shared with the
  // page cache) instead of being read into RAM. The default read puts them on 2 MiB pages:
  // decode, which streams every weight once per token, measured 14-30% faster for F16 (0-9% for
  // Q8_0/Q4_0) than through the mapping's page-cache pages (BENCHMARKS.md).
  bool mmap = false;
};

// Where a canonical tensor's bytes come from, and what must happen to them on the way.
struct TensorSource {
  const TensorInfo* info = nullptr;  // in files()
  LoadTransform transform = LoadTransform::None;
};

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});

  const ModelSpec& spec() const { return spec_; }
  const HParams& hp() const { return spec_.hp; }
  const ArchSpec& arch() const { return spec_.arch; }
  const ModelFiles& files() const { return files_; }
  WeightStore& store() { return store_; }
  const WeightStore& store() const { return store_; }

  const TensorSource* source(const std::string& canonical) const;
  // Produces the tensor's bytes as the model uses them (after any layout fix) into dst, which
  // holds the tensor's nbytes. Reads with pread, not through the memory map.
  void read_tensor(const std::string& canonical, uint8_t* dst) const;

  GlobalWeights global() const { return bind_global(spec_, store_); }
  LayerWeights layer(int64_t l) const { return bind_layer(spec_, store_, l); }

 private:
  Model() = default;
  void load_weights(const LoadOptions& opts);
  // Reads the matrices of `names` (no layout fix, sources_ set) into one huge-page arena and
  // adds them to the store as views into it.
  void read_into_arena(const std::vector<std::string>& names, Progress& prog, uint64_t done);
  ModelFiles files_;
  ModelSpec spec_;
  WeightStore store_;
  std::map<std::string, TensorSource> sources_;
};

}  // namespace strata
