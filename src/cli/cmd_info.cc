// strata info: what a model is and what running it needs, without running it.
#include <fmt/format.h>

#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/progress.h"
#include "model/footprint.h"
#include "model/hparams.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct InfoOptions {
  std::string model;
  int64_t ctx_size = 0;
  bool metadata = false;
};

void print_kv(const char* k, const std::string& v) {
  std::printf("  %-22s %s\n", k, v.c_str());
}

void info(const InfoOptions& o) {
  ModelFiles files = open_model_files(o.model);
  ModelSpec spec = read_model_spec(files);
  const HParams& h = spec.hp;
  std::printf("model: %s (%s)\n", files.path.c_str(),
              files.kind == ModelFiles::Kind::Gguf
                  ? fmt::format("GGUF v{}", files.gguf->version()).c_str()
                  : "Hugging Face folder");
  std::printf("architecture: %s\n", spec.arch.name.c_str());
  print_kv("layers", std::to_string(h.n_layer));
  print_kv("hidden size", std::to_string(h.n_embd));
  if (h.n_embd_io != h.n_embd) print_kv("embedding size", std::to_string(h.n_embd_io));
  print_kv("heads (kv heads)", fmt::format("{} ({})", h.n_head, h.n_head_kv));
  print_kv("head dim", std::to_string(h.head_dim));
  print_kv("ffn size", std::to_string(h.n_ff));
  print_kv("vocab (embedding rows)", std::to_string(h.n_vocab));
  print_kv("trained context", std::to_string(h.n_ctx_train));
  print_kv("norm",
           fmt::format("{} eps {}", spec.arch.norm == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm",
                       h.norm_eps));
  if (spec.arch.pos == PosKind::Rope)
    print_kv("positions",
             fmt::format(
                 "RoPE theta {} dim {} ({})", h.rope_theta, h.rope_dim,
                 spec.arch.rope_layout == RopeLayout::Interleaved ? "interleaved" : "rotate-half"));
  else
    print_kv("positions", spec.arch.pos == PosKind::Learned ? "learned" : "ALiBi");
  print_kv("activation", fmt::format("{}{}", activation_name(spec.arch.act),
                                     spec.arch.gated_ffn ? " (gated)" : ""));
  if (!spec.arch.pre_norm) print_kv("layer norm", "post-LN");
  const int64_t params = count_parameters(files);
  print_kv("parameters", fmt::format("{} ({:.2f} M)", params, double(params) / 1e6));
  print_kv("tensors", std::to_string(files.tensors.size()));
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  for (const auto& t : files.tensors) {
    auto& e = by_type[dtype_name(t.dtype)];
    e.first++;
    e.second += t.nbytes;
  }
  for (const auto& [name, e] : by_type)
    print_kv(("  " + name).c_str(),
             fmt::format("{} tensors, {}", e.first, human_bytes(double(e.second))));

  auto tok = Tokenizer::from_model_files(files);
  std::printf("tokenizer: %s, %d tokens\n", tok->kind_name().c_str(), tok->n_vocab());
  auto name = [&](int32_t id) {
    return id < 0 ? std::string("none") : fmt::format("{} '{}'", id, tok->token_text(id));
  };
  print_kv("bos", name(tok->bos()) + (tok->add_bos_default() ? " (added)" : ""));
  print_kv("eos", name(tok->eos()));
  if (tok->unk() >= 0) print_kv("unk", name(tok->unk()));
  if (tok->pad() >= 0) print_kv("pad", name(tok->pad()));
  print_kv("chat template", tok->chat_template().empty()
                                ? "none"
                                : fmt::format("{} chars", tok->chat_template().size()));

  const int64_t ctx = o.ctx_size > 0 ? o.ctx_size : h.n_ctx_train;
  const Footprint f = compute_footprint(spec, files, DType::F32, 512, 1);
  std::printf(
      "memory for a full in-RAM run (context %ld, f32 KV cache, 512-token prompt chunks):\n",
      static_cast<long>(ctx));
  print_kv("weights", human_bytes(double(f.weight_bytes)));
  print_kv("KV cache", fmt::format("{} ({} per token)",
                                   human_bytes(double(f.kv_bytes_per_token * uint64_t(ctx))),
                                   human_bytes(double(f.kv_bytes_per_token))));
  print_kv("activations", human_bytes(double(f.activation_bytes + f.logits_bytes)));
  print_kv("total", human_bytes(double(f.total(ctx))));
  if (o.metadata && files.gguf) {
    std::printf("metadata:\n");
    for (const auto& k : files.gguf->keys()) print_kv(k.c_str(), files.gguf->at(k).to_string());
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model and the memory it needs");
  cmd->add_option("-m,--model", o->model, "Model: a .gguf file or a Hugging Face folder")
      ->required();
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context size for the memory estimate");
  cmd->add_flag("--metadata", o->metadata, "Also print every GGUF metadata entry");
  cmd->callback([o] { info(*o); });
}

}  // namespace strata::cli
