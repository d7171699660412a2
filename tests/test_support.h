// Shared test helpers: where the shared test data lives, and reading golden files.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace strata::test {

// ../shared beside the checkout, or $STRATA_SHARED. Fails the test loudly if it is missing:
// tests that need models never skip silently.
std::string shared_dir();
std::string shared_path(const std::string& rel);
nlohmann::json read_json(const std::string& path);
std::string strata_binary();
std::string temp_dir();  // a fresh directory for this test process
// Runs a shell command, returns its exit status and captures stdout (and stderr if asked).
int run_command(const std::string& cmd, std::string* out, bool merge_stderr = false);

}  // namespace strata::test
