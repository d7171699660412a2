// The model's weights by canonical name (GGUF-style: "blk.3.attn_q.weight"), each a Tensor that
// knows its tier. Model code reaches weights only through this store, never through raw
// pointers into files, so the scheduler can place, stage and replace them.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata {

class WeightStore {
 public:
  // A tensor whose bytes live elsewhere (a mapped model file); `keepalive` keeps them alive.
  void add_view(const std::string& name, Tensor t, std::shared_ptr<const void> keepalive);
  // A tensor whose bytes the store owns (converted or rearranged at load). Returns its data.
  void* add_owned(const std::string& name, DType dtype, std::vector<int64_t> shape);
  // Replace the data pointer of an existing tensor (the scheduler staging a disk-tier tensor).
  void rebind(const std::string& name, void* data, Tier tier);

  const Tensor* find(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws naming the missing tensor
  bool has(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;

  uint64_t bytes_on(Tier t) const;
  uint64_t owned_bytes() const { return owned_bytes_; }

 private:
  struct Entry {
    Tensor tensor;
    std::shared_ptr<const void> keepalive;
    std::unique_ptr<uint8_t[]> owned;
  };
  std::map<std::string, Entry> entries_;
  uint64_t owned_bytes_ = 0;
};

}  // namespace strata
