// A tensor is a typed view of bytes somewhere in the memory hierarchy. It does not own memory;
// buffers (memory/) own it. Shapes are written outermost first, like PyTorch: a weight matrix is
// {rows = out_features, cols = in_features}, and quantized blocks run along the last dimension.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

// Where bytes live. Kernels only ever see Device or Host data; Disk-tier tensors are staged into a
// host buffer by the scheduler before any op reads them.
enum class Tier : uint8_t { Device = 0, Host = 1, Disk = 2 };
const char* tier_name(Tier t);

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  void* data = nullptr;
  Tier tier = Tier::Host;
  int device = 0;  // device index for Tier::Device

  int64_t numel() const;
  int64_t rows() const;  // product of all but the last dimension
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t row_bytes() const;  // not defined for G4, whose groups span 64 rows
  int64_t nbytes() const;
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
  std::string shape_str() const;
};

// A tensor as a model file describes it, before any byte is read.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first
  int file = 0;                // index into the model's list of files
  uint64_t offset = 0;         // absolute byte offset in that file
  uint64_t nbytes = 0;
};

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace strata
