#pragma once
// One exception type for every user-facing failure: the message says what was expected, what was found,
// and the way out. Library code throws; only the CLI turns errors into exit codes.
#include <stdexcept>
#include <string>

namespace tlc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace tlc
