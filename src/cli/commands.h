// Each subcommand registers itself on the CLI11 app; main() only dispatches.
#pragma once
#include <CLI/CLI.hpp>

namespace strata::cli {

void register_run(CLI::App& app);
void register_info(CLI::App& app);
void register_gen_dummy(CLI::App& app);
void register_bench(CLI::App& app);
void register_serve(CLI::App& app);
void register_chat(CLI::App& app);
void register_quantize(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_validate(CLI::App& app);
void register_profile(CLI::App& app);  // [policy-search]
void register_plan(CLI::App& app);     // [policy-search]

}  // namespace strata::cli
