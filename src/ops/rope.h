// Rotary position embedding, in place on [n_tok, n_heads * head_dim] rows. Only the first
// rope_dim dimensions of each head rotate. Two pairings exist in the wild:
//  - Interleaved: pairs (0,1), (2,3), ... — GGUF's llama layout (the converter permutes Q/K).
//  - HalfSplit:   pairs (i, i + rope_dim/2) — Hugging Face's rotate_half / GPT-NeoX layout.
#pragma once
#include <cstdint>

namespace strata {

enum class RopeLayout { Interleaved, HalfSplit };

void rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads, int64_t head_dim,
          int64_t rope_dim, float theta, RopeLayout layout);

}  // namespace strata
