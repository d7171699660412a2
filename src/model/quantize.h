// strata quantize: a model (GGUF file or Hugging Face folder, any architecture strata runs) in,
// a GGUF v3 file out, with the weight matrices converted to one GGML type.
//
// What goes where (the policy):
//   - Vectors (norm weights, biases) are always F32.
//   - Weight matrices get TYPE. A matrix whose rows are not a whole number of TYPE's blocks
//     falls back: a K-quant (256-element super-blocks) to the 32-element type of about the same
//     or better quality (Q2_K, Q3_K -> Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0), and a row
//     that is not a multiple of 32 either to F16 (BF16 if the source is BF16, whose range F16
//     lacks). Values beyond F16's range are clamped to +-65504 (and reported).
//   - The token embedding, the learned position table and the output head ("embedding
//     tensors") get --embd-type. Default: TYPE itself when TYPE has 8 or more bits (Q8_0, F16,
//     BF16, F32); Q8_0 when TYPE is a 2- to 6-bit type, because these tables are read row by row
//     and their errors reach every token directly (the role llama.cpp gives Q6_K for its head).
//     The same fallbacks apply.
//   - --keep-output: the output head (or the token embedding, when the model ties them) keeps
//     its source type and bytes.
//   - A tensor whose chosen type equals its source type is copied byte for byte.
//
// Layout and names: tensors are written under strata's canonical GGUF names in the canonical
// layout (GPT-2's Conv1D matrices transposed, BLOOM's fused QKV as [Q; K; V]); for a Hugging Face
// Llama the rows of attn_q / attn_k are permuted per head from rotate-half order to GGUF's
// interleaved-pair order. Metadata: general.architecture and the hyper-parameter keys strata
// (and llama.cpp, for llama) reads, the tokenizer as tokenizer.ggml.*, general.file_type and
// general.quantization_version = 2.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct QuantizeOptions {
  DType type = DType::Q4_K;
  std::optional<DType> embd_type;  // default: see above
  bool keep_output = false;
  int threads = 0;  // 0: all cores
  bool progress = true;
  // Messages (what was done, fallbacks, warnings); nullptr: stderr.
  std::function<void(const std::string&)> log;
};

struct QuantizedTensor {
  std::string name;
  std::vector<int64_t> shape;  // outermost first
  DType from = DType::F32;     // type in the input
  DType to = DType::F32;       // type written
  std::string why;             // why `to` differs from what the policy asked for, or ""
};

struct QuantizeResult {
  std::vector<QuantizedTensor> tensors;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data only
  int64_t n_params = 0;
  double seconds = 0;
};

// Types `strata quantize --type` accepts.
bool quantize_type_supported(DType t);
// llama.cpp's general.file_type value for a model whose matrices are mostly `t`.
uint32_t gguf_file_type(DType t);
// The type a matrix of row length `cols` gets when `want` was asked for (fallback rules above);
// `why` says what happened when the result differs. `src` is the source type.
DType fit_type(DType want, int64_t cols, DType src, std::string* why);

// Throws strata::Error for unusable input, an unsupported type or a write failure. The output
// appears only when complete (temp name + rename).
QuantizeResult quantize_model(const std::string& in, const std::string& out,
                              const QuantizeOptions& o);

}  // namespace strata
