#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace strata {

void init_logging(const std::string& level) {
  static bool done = false;
  if (!done) {
    auto logger = spdlog::stderr_color_mt("strata");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("[%^%l%$] %v");
    done = true;
  }
  const char* env = std::getenv("STRATA_LOG");
  spdlog::set_level(spdlog::level::from_str(env ? env : level));
}

}  // namespace strata
