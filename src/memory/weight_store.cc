#include "memory/weight_store.h"

#include "core/error.h"

namespace strata {

void WeightStore::add_view(const std::string& name, Tensor t,
                           std::shared_ptr<const void> keepalive) {
  if (entries_.count(name)) fail("weight '{}' added twice", name);
  Entry e;
  e.tensor = std::move(t);
  e.keepalive = std::move(keepalive);
  entries_.emplace(name, std::move(e));
}

void* WeightStore::add_owned(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  if (entries_.count(name)) fail("weight '{}' added twice", name);
  Entry e;
  e.tensor.dtype = dtype;
  e.tensor.shape = std::move(shape);
  const uint64_t n = static_cast<uint64_t>(e.tensor.nbytes());
  e.owned.reset(new uint8_t[n ? n : 1]);
  e.tensor.data = e.owned.get();
  e.tensor.tier = Tier::Host;
  owned_bytes_ += n;
  void* p = e.tensor.data;
  entries_.emplace(name, std::move(e));
  return p;
}

void WeightStore::rebind(const std::string& name, void* data, Tier tier) {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("weight '{}' not found", name);
  it->second.tensor.data = data;
  it->second.tensor.tier = tier;
}

const Tensor* WeightStore::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second.tensor;
}

const Tensor& WeightStore::get(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) fail("the model has no tensor '{}'", name);
  return *t;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : entries_) out.push_back(k);
  return out;
}

uint64_t WeightStore::bytes_on(Tier t) const {
  uint64_t n = 0;
  for (const auto& [k, v] : entries_)
    if (v.tensor.tier == t) n += static_cast<uint64_t>(v.tensor.nbytes());
  return n;
}

}  // namespace strata
