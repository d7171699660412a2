#include "core/dtype.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace strata {
namespace {

struct Entry {
  DType t;
  DTypeInfo info;
};

constexpr Entry kTypes[] = {
    {DType::F32, {"F32", 1, 4, false}},      {DType::F16, {"F16", 1, 2, false}},
    {DType::BF16, {"BF16", 1, 2, false}},    {DType::F64, {"F64", 1, 8, false}},
    {DType::I8, {"I8", 1, 1, false}},        {DType::I16, {"I16", 1, 2, false}},
    {DType::I32, {"I32", 1, 4, false}},      {DType::I64, {"I64", 1, 8, false}},
    {DType::Q4_0, {"Q4_0", 32, 18, true}},   {DType::Q4_1, {"Q4_1", 32, 20, true}},
    {DType::Q5_0, {"Q5_0", 32, 22, true}},   {DType::Q5_1, {"Q5_1", 32, 24, true}},
    {DType::Q8_0, {"Q8_0", 32, 34, true}},   {DType::Q8_1, {"Q8_1", 32, 36, true}},
    {DType::Q2_K, {"Q2_K", 256, 84, true}},  {DType::Q3_K, {"Q3_K", 256, 110, true}},
    {DType::Q4_K, {"Q4_K", 256, 144, true}}, {DType::Q5_K, {"Q5_K", 256, 176, true}},
    {DType::Q6_K, {"Q6_K", 256, 210, true}}, {DType::Q8_K, {"Q8_K", 256, 292, true}},
    {DType::G4, {"G4", 64, 36, true}},
};

// Names of every GGML type id, for messages about types strata does not compute with.
const char* const kGgmlNames[] = {
    "F32",   "F16",        "Q4_0",       "Q4_1",       "Q4_2",     "Q4_3",     "Q5_0",
    "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",       "Q3_K",     "Q4_K",     "Q5_K",
    "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",     "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
    "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",         "I16",      "I32",      "I64",
    "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",   "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
    "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
  for (const auto& e : kTypes)
    if (e.t == t) return e.info;
  fail("unknown element type id {}", static_cast<uint32_t>(t));
}

const char* dtype_name(DType t) {
  return dtype_info(t).name;
}

std::optional<DType> dtype_from_ggml(uint32_t id) {
  for (const auto& e : kTypes)
    if (static_cast<uint32_t>(e.t) == id && id < 1000) return e.t;
  return std::nullopt;
}

std::string ggml_type_name(uint32_t id) {
  if (id < sizeof(kGgmlNames) / sizeof(kGgmlNames[0])) return kGgmlNames[id];
  return "type#" + std::to_string(id);
}

std::optional<DType> dtype_from_name(const std::string& name) {
  std::string up = name;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  for (const auto& e : kTypes)
    if (up == e.info.name) return e.t;
  return std::nullopt;
}

int64_t row_bytes(DType t, int64_t n) {
  const DTypeInfo& i = dtype_info(t);
  if (n < 0 || n % i.block_elems != 0)
    fail("a row of {} elements is not a whole number of {} blocks ({} elements each)", n, i.name,
         i.block_elems);
  return n / i.block_elems * i.block_bytes;
}

}  // namespace strata
