#include "policy/policy.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "core/error.h"

namespace strata {

Policy Policy::for_cpu_only() const {
  Policy p = *this;
  p.w_cpu += p.w_gpu;
  p.c_cpu += p.c_gpu;
  p.a_cpu += p.a_gpu;
  p.w_gpu = p.c_gpu = p.a_gpu = 0;
  p.cpu_cache_compute = false;
  return p;
}

std::string Policy::describe() const {
  return fmt::format(
      "--percent {:g} {:g} {:g} {:g} {:g} {:g} --gpu-batch-size {} --num-gpu-batches {}{}{}", w_gpu,
      w_cpu, c_gpu, c_cpu, a_gpu, a_cpu, gpu_batch_size, num_gpu_batches,
      compress_weight ? " --compress-weight" : "", compress_cache ? " --compress-cache" : "");
}

Policy parse_percent(const std::vector<double>& v) {
  if (v.size() != 6) fail("--percent takes six numbers (WG WC CG CC AG AC), got {}", v.size());
  for (double x : v)
    if (!(x >= 0 && x <= 100)) fail("--percent values must be between 0 and 100, got {:g}", x);
  const char* what[] = {"weights", "KV cache", "activations"};
  for (int i = 0; i < 3; ++i)
    if (v[2 * i] + v[2 * i + 1] > 100 + 1e-9)
      fail("--percent: {} on GPU ({:g}%) and CPU ({:g}%) exceed 100%", what[i], v[2 * i],
           v[2 * i + 1]);
  Policy p;
  p.w_gpu = v[0], p.w_cpu = v[1], p.c_gpu = v[2], p.c_cpu = v[3], p.a_gpu = v[4], p.a_cpu = v[5];
  return p;
}

uint64_t parse_bytes(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) fail("'{}' is not a size (try 8G, 512M or a number of bytes)", s);
  double v = std::stod(s.substr(0, i));
  std::string unit = s.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() == 2 && unit[1] == 'I') unit.pop_back();  // GiB == G
  double mul = 1;
  if (unit.empty() || unit == "B")
    mul = 1;
  else if (unit == "K")
    mul = 1024.0;
  else if (unit == "M")
    mul = 1024.0 * 1024;
  else if (unit == "G")
    mul = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    mul = 1024.0 * 1024 * 1024 * 1024;
  else
    fail("'{}' is not a size (unit must be K, M, G or T)", s);
  const double b = v * mul;
  if (!(b > 0) || b > 1e18) fail("'{}' is not a usable size", s);
  return static_cast<uint64_t>(std::llround(b));
}

}  // namespace strata
