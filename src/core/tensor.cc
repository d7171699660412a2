#include "core/tensor.h"

#include "core/error.h"

namespace strata {

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::Device:
      return "gpu";
    case Tier::Host:
      return "cpu";
    case Tier::Disk:
      return "disk";
  }
  return "?";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Tensor::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
  return n;
}

int64_t Tensor::row_bytes() const {
  return strata::row_bytes(dtype, cols());
}

int64_t Tensor::nbytes() const {
  // G4 groups 64 rows (see quant/g4.h): 36 bytes per column per group of rows.
  if (dtype == DType::G4) return (rows() + 63) / 64 * cols() * 36;
  return rows() * row_bytes();
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string Tensor::shape_str() const {
  return shape_to_string(shape);
}

}  // namespace strata
