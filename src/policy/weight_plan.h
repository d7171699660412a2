// Which tier each weight lives on, decided before anything is read. Weights are grouped into
// units the executor visits in order every step: the layers (0..L-1), then the head (L). Within a
// unit, tensors are assigned by FlexGen's rule: walking the unit's bytes in order, a tensor whose
// midpoint falls in the first w_cpu% stays in RAM, the rest is on disk and streams in each pass.
// The untied token embedding is unit L+1 (read row by row when on disk); norms, biases and small
// tables are always resident.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/model.h"
#include "policy/policy.h"

namespace strata {

struct PlannedTensor {
  std::string name;  // canonical
  int unit = -1;     // -1: always resident
  Tier tier = Tier::Host;
  DType dtype = DType::F32;  // as computed with (G4 when compressed)
  std::vector<int64_t> shape;
  uint64_t bytes = 0;      // in that form
  bool converted = false;  // differs from the file's bytes (compressed or rearranged)
};

struct WeightPlan {
  std::vector<PlannedTensor> tensors;
  int n_layers = 0;
  int head_unit() const { return n_layers; }
  int embd_unit() const { return n_layers + 1; }
  uint64_t resident_bytes() const;
  uint64_t disk_bytes() const;
  uint64_t unit_disk_bytes(int unit) const;  // as laid out in a staging slot (aligned)
  uint64_t max_unit_disk_bytes() const;
  uint64_t streamed_bytes_per_pass() const;  // disk bytes of units 0..L
  bool needs_offload_file() const;           // some disk tensor must be converted first
  const PlannedTensor* find(const std::string& name) const;
};

// Bytes a tensor takes in a staging slot: its size, padded so it can start at the same offset
// modulo 4096 as in its file (direct I/O lands in place).
uint64_t slot_bytes(uint64_t bytes);

WeightPlan plan_weights(const Model& model, const Policy& policy);

}  // namespace strata
