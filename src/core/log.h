// Logging goes to stderr through spdlog so stdout stays clean for generated text and JSON.
#pragma once
#include <spdlog/spdlog.h>

namespace strata {

// level: "error", "warn", "info", "debug"; STRATA_LOG in the environment overrides it.
void init_logging(const std::string& level = "warn");

}  // namespace strata
