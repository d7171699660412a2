#include "model/arch.h"

#include <fmt/format.h>

#include "core/error.h"

namespace strata {
namespace {

std::vector<ArchSpec> table() {
  std::vector<ArchSpec> t;
  {
    ArchSpec a;  // Llama, Mistral, TinyLlama, SmolLM (optional biases are found from the weights)
    a.name = "llama";
    t.push_back(a);
  }
  {
    ArchSpec a;
    a.name = "opt";
    a.norm = NormKind::LayerNorm;
    a.pos = PosKind::Learned;
    a.learned_pos_offset = 2;
    a.act = Activation::ReLU;
    a.gated_ffn = false;
    a.tied_head_default = true;
    t.push_back(a);
  }
  {
    ArchSpec a;
    a.name = "gpt2";
    a.norm = NormKind::LayerNorm;
    a.pos = PosKind::Learned;
    a.act = Activation::GELUTanh;
    a.gated_ffn = false;
    a.qkv = QkvKind::Fused;
    a.tied_head_default = true;
    t.push_back(a);
  }
  {
    ArchSpec a;
    a.name = "bloom";
    a.norm = NormKind::LayerNorm;
    a.pos = PosKind::Alibi;
    a.act = Activation::GELUTanh;
    a.gated_ffn = false;
    a.embd_norm = true;
    a.qkv = QkvKind::Fused;
    a.tied_head_default = true;
    t.push_back(a);
  }
  return t;
}

}  // namespace

std::vector<std::string> known_archs() {
  std::vector<std::string> n;
  for (const auto& a : table()) n.push_back(a.name);
  return n;
}

ArchSpec arch_by_name(const std::string& name) {
  std::string key = name == "mistral" ? "llama" : name;
  for (auto& a : table())
    if (a.name == key) return a;
  fail("unsupported architecture '{}' (supported: {}, mistral)", name,
       fmt::join(known_archs(), ", "));
}

}  // namespace strata
