// GGUF reader, then everything that reads GGUF metadata: the tensor index, the model spec and the
// tokenizer. Only strata::Error may come out.
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/model_files.h"
#include "fuzz_input.h"
#include "model/hparams.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    strata::ModelFiles m = strata::open_model_files(strata::fuzz::memfile(data, size));
    try {
      strata::read_model_spec(m);
    } catch (const strata::Error&) {
    }
    auto tok = strata::Tokenizer::from_gguf(*m.gguf);
    auto ids = tok->encode("Hello, world! <s> \xe2\x96\x81 \xff", true, true);
    tok->decode(ids);
  } catch (const strata::Error&) {
  }
  return 0;
}
