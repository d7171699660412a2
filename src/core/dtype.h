// Element types. The numeric values of the GGML types are GGUF's on-disk type ids, so a GGUF
// tensor's type maps 1:1; strata-internal formats live above 1000 and never reach a GGUF file.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace strata {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
  // FlexGen group-wise asymmetric 4-bit, group of 64 along the row: f16 scale, f16 min, 32 bytes.
  G4 = 1001,
};

struct DTypeInfo {
  const char* name;
  int64_t block_elems;  // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool quantized;
};

// Known types only; throws strata::Error for an id that is not a DType strata can hold.
const DTypeInfo& dtype_info(DType t);
const char* dtype_name(DType t);
// GGUF type id -> DType. Types GGUF knows but strata cannot compute with (IQ*, TQ*, ...) give
// nullopt; ggml_type_name() still names them for error messages.
std::optional<DType> dtype_from_ggml(uint32_t id);
std::string ggml_type_name(uint32_t id);
std::optional<DType> dtype_from_name(const std::string& name);  // "f16", "q4_0", "Q4_K", ...

// Bytes of a row of n elements; throws when n is not a whole number of blocks.
int64_t row_bytes(DType t, int64_t n);
inline bool is_float_type(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

}  // namespace strata
