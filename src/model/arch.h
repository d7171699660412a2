// An architecture is data: a table of choices the forward pass reads, plus how its weights are
// named. Adding a model family means adding a row to arch.cc (and its weight names to
// tensor_names.cc), not a class.
#pragma once
#include <string>
#include <vector>

#include "ops/elementwise.h"
#include "ops/rope.h"

namespace strata {

enum class NormKind { RMSNorm, LayerNorm };
enum class PosKind { Rope, Learned, Alibi };
enum class QkvKind { Separate, Fused };  // Fused: one matrix, rows [Q; K; V]

struct ArchSpec {
  std::string name;  // "llama", "opt", "gpt2", "bloom"
  NormKind norm = NormKind::RMSNorm;
  PosKind pos = PosKind::Rope;
  RopeLayout rope_layout = RopeLayout::Interleaved;  // set per source file (GGUF vs HF)
  Activation act = Activation::SiLU;
  bool gated_ffn = true;   // act(gate(x)) * up(x), then down
  bool pre_norm = true;    // false: post-LayerNorm blocks (OPT-350m)
  bool embd_norm = false;  // a norm right after the token embedding (BLOOM)
  QkvKind qkv = QkvKind::Separate;
  int learned_pos_offset = 0;      // OPT's learned positions start at row 2
  bool tied_head_default = false;  // head shares the embedding when no output tensor exists
};

// The known architectures by name (GGUF general.architecture / HF model_type). Throws
// strata::Error naming the supported ones for anything else.
ArchSpec arch_by_name(const std::string& name);
std::vector<std::string> known_archs();

}  // namespace strata
