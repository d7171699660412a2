#include "policy/weight_plan.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace strata {

uint64_t slot_bytes(uint64_t bytes) {
  return (bytes + 2 * 4096 + 4095) / 4096 * 4096;
}

uint64_t WeightPlan::resident_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.tier == Tier::Host) n += t.bytes;
  return n;
}

uint64_t WeightPlan::disk_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.tier == Tier::Disk) n += t.bytes;
  return n;
}

uint64_t WeightPlan::unit_disk_bytes(int unit) const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.unit == unit && t.tier == Tier::Disk) n += slot_bytes(t.bytes);
  return n;
}

uint64_t WeightPlan::max_unit_disk_bytes() const {
  uint64_t m = 0;
  for (int u = 0; u <= head_unit(); ++u) m = std::max(m, unit_disk_bytes(u));
  return m;
}

uint64_t WeightPlan::streamed_bytes_per_pass() const {
  uint64_t n = 0;
  for (const auto& t : tensors)
    if (t.tier == Tier::Disk && t.unit >= 0 && t.unit <= head_unit()) n += t.bytes;
  return n;
}

bool WeightPlan::needs_offload_file() const {
  for (const auto& t : tensors)
    if (t.tier == Tier::Disk && t.converted) return true;
  return false;
}

const PlannedTensor* WeightPlan::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

uint64_t g4_bytes(const std::vector<int64_t>& shape) {
  return static_cast<uint64_t>((shape[0] + 63) / 64 * shape[1] * 36);
}

int unit_of(const std::string& name, int n_layers, bool tied) {
  if (name.rfind("blk.", 0) == 0) return std::stoi(name.substr(4));
  if (name == "output.weight" || name == "proj_out.weight") return n_layers;
  if (name == "token_embd.weight") return tied ? n_layers : n_layers + 1;
  return -1;
}

}  // namespace

WeightPlan plan_weights(const Model& model, const Policy& policy) {
  const Policy p = policy.for_cpu_only();
  WeightPlan plan;
  plan.n_layers = static_cast<int>(model.hp().n_layer);
  const bool tied = model.hp().tied_head;
  std::map<int, std::vector<size_t>> units;
  for (const std::string& name : model.store().names()) {
    const Tensor& t = model.store().get(name);
    PlannedTensor pt;
    pt.name = name;
    pt.shape = t.shape;
    pt.dtype = t.dtype;
    pt.bytes = static_cast<uint64_t>(t.nbytes());
    const TensorSource* src = model.source(name);
    pt.converted = src && src->transform != LoadTransform::None;
    if (t.shape.size() == 2 && name != "position_embd.weight") {
      pt.unit = unit_of(name, plan.n_layers, tied);
      if (p.compress_weight && t.shape[1] % 2 == 0) {
        pt.dtype = DType::G4;
        pt.bytes = g4_bytes(t.shape);
        pt.converted = true;
      }
    }
    plan.tensors.push_back(pt);
    if (pt.unit >= 0) units[pt.unit].push_back(plan.tensors.size() - 1);
  }
  // FlexGen's rule per unit: the tensor's byte midpoint against the RAM share.
  for (auto& [u, idx] : units) {
    uint64_t total = 0;
    for (size_t i : idx) total += plan.tensors[i].bytes;
    uint64_t cum = 0;
    for (size_t i : idx) {
      PlannedTensor& t = plan.tensors[i];
      const double mid = total ? 100.0 * (double(cum) + double(t.bytes) / 2) / double(total) : 0;
      t.tier = mid < p.w_cpu ? Tier::Host : Tier::Disk;
      cum += t.bytes;
    }
  }
  return plan;
}

}  // namespace strata
