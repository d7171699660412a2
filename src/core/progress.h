// A progress line on stderr for slow work (loading, converting, quantizing, benchmarks). It
// redraws in place on a terminal, prints a line every few seconds otherwise, and is silent when
// disabled (--quiet, or STRATA_NO_PROGRESS=1).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace strata {

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit = "", bool enabled = true);
  ~Progress();
  void update(int64_t done, const std::string& detail = "");
  void add(int64_t n, const std::string& detail = "") { update(done_ + n, detail); }
  void finish(const std::string& detail = "");
  // Erases the line (terminal) without a final report: for progress that must not stay on screen.
  void clear();

  static void set_enabled(bool on);
  static bool enabled();

 private:
  void draw(bool final, const std::string& detail);
  std::string what_, unit_;
  int64_t total_, done_ = 0;
  bool finished_ = false, drawn_ = false, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool on_;
};

std::string human_bytes(double bytes);

}  // namespace strata
