// strata quantize: convert a model (GGUF or Hugging Face folder) to a GGUF file of another type.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/quantize.h"

namespace strata::cli {
namespace {

struct QuantizeCliOptions {
  std::string in, out, type, embd_type;
  bool keep_output = false, quiet = false;
  int threads = 0;
};

DType parse_quant_type(const std::string& s, const char* what) {
  auto t = dtype_from_name(s);
  if (!t || !quantize_type_supported(*t))
    fail(
        "{} '{}' is not supported (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k)",
        what, s);
  return *t;
}

void quantize_cmd(const QuantizeCliOptions& c) {
  if (c.quiet) Progress::set_enabled(false);
  QuantizeOptions o;
  o.type = parse_quant_type(c.type, "--type");
  if (!c.embd_type.empty()) o.embd_type = parse_quant_type(c.embd_type, "--embd-type");
  o.keep_output = c.keep_output;
  o.threads = c.threads;
  o.progress = !c.quiet;
  o.log = [q = c.quiet](const std::string& s) {
    if (!q || s.rfind("warning", 0) == 0) std::fprintf(stderr, "%s\n", s.c_str());
  };
  const QuantizeResult r = quantize_model(c.in, c.out, o);
  const double bpw = r.n_params ? 8.0 * double(r.bytes_out) / double(r.n_params) : 0;
  std::fprintf(stderr, "%s\n",
               fmt::format("wrote {}: {} tensors, {} -> {} ({:.2f} bits per weight) in {:.1f} s",
                           c.out, r.tensors.size(), human_bytes(double(r.bytes_in)),
                           human_bytes(double(r.bytes_out)), bpw, r.seconds)
                   .c_str());
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto c = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Convert a model (GGUF or Hugging Face folder) to a quantized GGUF file");
  cmd->add_option("input", c->in, "Input model: a .gguf file or a Hugging Face folder")->required();
  cmd->add_option("output", c->out, "Output .gguf path")->required();
  cmd->add_option("--type", c->type,
                  "Matrix type: q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k f16 bf16 f32")
      ->required();
  cmd->add_option("--embd-type", c->embd_type,
                  "Type of the token embedding, position table and output head (default: q8_0 for "
                  "types under 8 "
                  "bits, else --type)");
  cmd->add_flag("--keep-output", c->keep_output,
                "Keep the output head (or the tied embedding) in its source type");
  cmd->add_option("-t,--threads", c->threads, "Threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("-q,--quiet", c->quiet, "No progress output");
  cmd->callback([c] { quantize_cmd(*c); });
}

}  // namespace strata::cli
