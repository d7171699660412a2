#include "test_support.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "core/file.h"

namespace strata::test {

std::string shared_dir() {
  const char* env = std::getenv("STRATA_SHARED");
  std::string dir = env && *env ? env : STRATA_SHARED_DIR;
  if (!is_directory(dir + "/models")) {
    ADD_FAILURE() << "test data missing: " << dir
                  << "/models not found (set STRATA_SHARED to the shared/ folder)";
    throw std::runtime_error("shared test data missing at " + dir);
  }
  return dir;
}

std::string shared_path(const std::string& rel) {
  const std::string p = shared_dir() + "/" + rel;
  if (!file_exists(p)) {
    ADD_FAILURE() << "test data missing: " << p;
    throw std::runtime_error("test data missing: " + p);
  }
  return p;
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_text_file(path));
}

std::string strata_binary() {
  return STRATA_BINARY;
}

std::string temp_dir() {
  static std::string dir = [] {
    std::string tmpl = "/tmp/strata-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    return tmpl;
  }();
  return dir;
}

int run_command(const std::string& cmd, std::string* out, bool merge_stderr) {
  const std::string full = merge_stderr ? cmd + " 2>&1" : cmd;
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
    if (out) out->append(buf.data(), n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace strata::test
