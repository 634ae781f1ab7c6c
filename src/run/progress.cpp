#include "tlc/progress.h"

#include <unistd.h>

#include <cstdio>
#include <ostream>

namespace tlc {

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

Progress::Progress(std::ostream& out, bool terminal, std::string label, int64_t total, std::string unit)
    : out_(out), tty_(terminal), label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void Progress::update(int64_t done) {
  auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  const double rate = elapsed > 0 ? done / elapsed : 0;
  const double eta = rate > 0 ? (total_ - done) / rate : 0;
  char stats[128];
  std::snprintf(stats, sizeof stats, "%lld/%lld %s, %.0f %s/s, ETA %.0f s", static_cast<long long>(done),
                static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(), eta);
  if (tty_) {
    if (since < 0.1 && done < total_) return;  // redraw at most 10 times a second
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    out_ << "\r" << label_ << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << stats
         << "   " << std::flush;
    drawn_ = true;
  } else {
    // Plain lines every 5 seconds, so logs of long phases show life without flooding; short phases
    // print nothing (their summary line follows).
    if (since < 5.0) return;
    out_ << label_ << ": " << stats << "\n" << std::flush;
    last_reported_ = done;
  }
  last_print_ = now;
}

void Progress::finish() {
  if (tty_ && drawn_) out_ << "\r" << std::string(label_.size() + 90, ' ') << "\r" << std::flush;
}

}  // namespace tlc
