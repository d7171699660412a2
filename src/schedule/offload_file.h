// The per-model offload file: disk-tier tensors that cannot stream straight from the model file
// (compressed to G4, or rearranged at load) are converted once and written here, each at a
// 4096-byte aligned offset, so every pass reads them with large direct I/O. Written to a temp
// name with progress and renamed when complete; reused when its key (model file identity +
// the converted tensors' names, types and sizes) matches.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "model/model.h"
#include "policy/weight_plan.h"

namespace strata {

struct OffloadFile {
  std::string path;
  std::map<std::string, uint64_t> offsets;  // canonical name -> byte offset
  bool reused = false;
};

// Produces a tensor in its planned form (dtype/bytes of the PlannedTensor) into dst.
void produce_tensor(const Model& model, const PlannedTensor& t, uint8_t* dst);

OffloadFile prepare_offload_file(const Model& model, const WeightPlan& plan, const std::string& dir,
                                 bool progress);

}  // namespace strata
