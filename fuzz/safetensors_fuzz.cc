// safetensors header parsing and validation.
#include "core/error.h"
#include "formats/safetensors.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = strata::read_safetensors(strata::fuzz::memfile(data, size), 0);
    for (const auto& t : f.tensors) f.file->range(t.offset, t.nbytes, t.name.c_str());
  } catch (const strata::Error&) {
  }
  return 0;
}
