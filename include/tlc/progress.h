#pragma once
// Progress output: on a terminal a bar redrawn in place ("\r") with rate and ETA; elsewhere (CI, pipes,
// files) a plain line every 5 seconds, never a carriage return.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace tlc {

bool stdout_is_terminal();

class Progress {
 public:
  Progress(std::ostream& out, bool terminal, std::string label, int64_t total, std::string unit = "img");
  void update(int64_t done);  // absolute count
  void finish();              // clears the bar (terminal) or prints nothing more (plain)

 private:
  std::ostream& out_;
  bool tty_;
  std::string label_, unit_;
  int64_t total_;
  int64_t last_reported_ = -1;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool drawn_ = false;
};

}  // namespace tlc
