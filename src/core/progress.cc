#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace strata {
namespace {
int g_enabled = -1;  // -1: decide from environment
}

void Progress::set_enabled(bool on) {
  g_enabled = on ? 1 : 0;
}
bool Progress::enabled() {
  if (g_enabled < 0) {
    const char* e = std::getenv("STRATA_NO_PROGRESS");
    g_enabled = (e && *e && *e != '0') ? 0 : 1;
  }
  return g_enabled == 1;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

Progress::Progress(std::string what, int64_t total, std::string unit, bool enabled)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      on_(enabled) {}

Progress::~Progress() {
  if (!finished_ && done_ > 0) finish();
}

void Progress::update(int64_t done, const std::string& detail) {
  done_ = done;
  if (!on_ || !enabled()) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (elapsed < 0.5) return;  // quick work stays quiet
  if (since < (tty_ ? 0.1 : 5.0) && drawn_) return;
  last_draw_ = now;
  drawn_ = true;
  draw(false, detail);
}

void Progress::finish(const std::string& detail) {
  if (finished_) return;
  finished_ = true;
  if (!on_ || !enabled()) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!drawn_ && elapsed < 0.5) return;
  draw(true, detail);
}

void Progress::clear() {
  finished_ = true;
  if (drawn_ && tty_ && on_ && enabled()) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
}

void Progress::draw(bool final, const std::string& detail) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string amount;
  if (unit_ == "B")
    amount = fmt::format("{} / {}", human_bytes(double(done_)), human_bytes(double(total_)));
  else
    amount = fmt::format("{} / {}{}", done_, total_, unit_.empty() ? "" : " " + unit_);
  const double pct = total_ > 0 ? 100.0 * double(done_) / double(total_) : 100.0;
  std::string line = fmt::format("{}: {:5.1f}% {} {:.1f}s", what_, pct, amount, secs);
  if (unit_ == "B" && secs > 0) line += fmt::format(" ({}/s)", human_bytes(double(done_) / secs));
  if (!detail.empty()) line += " " + detail;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace strata
