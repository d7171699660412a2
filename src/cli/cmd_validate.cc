// strata validate: check a GGUF file strictly (see formats/gguf_validate.h); "ok" and exit 0 when
// it has no problems.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/gguf_validate.h"

namespace strata::cli {
namespace {

struct ValidateOptions {
  std::string path;
  bool json = false, strict = false;
};

void validate_cmd(const ValidateOptions& o) {
  const GgufValidation v = validate_gguf(o.path);
  const bool ok = v.ok() && (!o.strict || v.warnings.empty());
  if (o.json) {
    nlohmann::json j;
    j["path"] = v.path;
    j["ok"] = ok;
    j["version"] = v.version;
    j["tensors"] = v.n_tensors;
    j["metadata"] = v.n_kv;
    j["alignment"] = v.alignment;
    j["data_offset"] = v.data_offset;
    j["problems"] = v.problems;
    j["warnings"] = v.warnings;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const auto& p : v.problems) std::printf("problem: %s\n", p.c_str());
    for (const auto& w : v.warnings) std::printf("warning: %s\n", w.c_str());
    if (ok)
      std::printf(
          "%s\n",
          fmt::format("ok: {} (GGUF v{}, {} tensors, {} metadata keys{})", v.path, v.version,
                      v.n_tensors, v.n_kv,
                      v.warnings.empty() ? "" : fmt::format(", {} warnings", v.warnings.size()))
              .c_str());
  }
  std::fflush(stdout);
  if (!ok)
    fail("{}: {} problem{}{}", o.path, v.problems.size(), v.problems.size() == 1 ? "" : "s",
         o.strict && !v.warnings.empty()
             ? fmt::format(", {} warnings (--strict)", v.warnings.size())
             : "");
}

}  // namespace

void register_validate(CLI::App& app) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* cmd =
      app.add_subcommand("validate", "Check a GGUF file strictly: header, metadata, tensor layout");
  cmd->add_option("file", o->path, "The .gguf file")->required();
  cmd->add_flag("--json", o->json, "One JSON object with every problem and warning");
  cmd->add_flag("--strict", o->strict, "Warnings count as problems");
  cmd->callback([o] { validate_cmd(*o); });
}

}  // namespace strata::cli
