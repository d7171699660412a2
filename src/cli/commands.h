// Each subcommand registers itself on the CLI11 app; main() only dispatches.
#pragma once
#include <CLI/CLI.hpp>

namespace strata::cli {

void register_run(CLI::App& app);
void register_info(CLI::App& app);
void register_gen_dummy(CLI::App& app);

}  // namespace strata::cli
