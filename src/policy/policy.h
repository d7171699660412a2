// Where things live: FlexGen's Policy. Weights, KV cache and activations are each split over
// GPU / CPU / disk by percentages (the rest of 100 is disk), any mix. Throughput comes from a
// block of gpu_batch_size x num_gpu_batches sequences that visits each layer together.
// Without a GPU, the top tier is RAM: GPU percentages then count as RAM.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

struct Policy {
  double w_gpu = 0, w_cpu = 100;  // weights
  double c_gpu = 0, c_cpu = 100;  // KV cache
  double a_gpu = 0, a_cpu = 100;  // activations (hidden states between layers)
  int64_t gpu_batch_size = 1;
  int64_t num_gpu_batches = 1;
  bool compress_weight = false;    // group-wise 4-bit (G4) weights
  bool compress_cache = false;     // group-wise 4-bit (G4) KV cache
  bool cpu_cache_compute = false;  // GPU runs: decode attention on the CPU next to a CPU cache

  double w_disk() const { return 100 - w_gpu - w_cpu; }
  double c_disk() const { return 100 - c_gpu - c_cpu; }
  double a_disk() const { return 100 - a_gpu - a_cpu; }
  bool uses_disk() const { return w_disk() > 0 || c_disk() > 0 || a_disk() > 0; }
  int64_t block_size() const { return gpu_batch_size * num_gpu_batches; }
  // Without a GPU: fold the GPU shares into the CPU's.
  Policy for_cpu_only() const;
  std::string describe() const;  // "--percent 0 100 0 100 0 100 ..." style
};

// Parses FlexGen's six numbers WG WC CG CC AG AC; throws strata::Error when a pair exceeds 100,
// a value is negative, or the count is not six.
Policy parse_percent(const std::vector<double>& six);

// "8G", "512M", "1.5GiB", "4000000000" -> bytes. Throws on anything else.
uint64_t parse_bytes(const std::string& s);

}  // namespace strata
