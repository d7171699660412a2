// strata: run large language models on the hardware people have.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/log.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run large language models on the hardware you have"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  strata::cli::register_run(app);
  strata::cli::register_info(app);
  strata::cli::register_gen_dummy(app);
  strata::cli::register_bench(app);
  strata::cli::register_serve(app);
  strata::cli::register_chat(app);
  strata::cli::register_quantize(app);
  strata::cli::register_perplexity(app);
  strata::cli::register_validate(app);
  strata::cli::register_profile(app);  // [policy-search]
  strata::cli::register_plan(app);     // [policy-search]
  strata::cli::tune_allocator();
  try {
    strata::init_logging();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
