#pragma once
// An error that becomes an HTTP answer: its status and a message that names the problem. The server turns it
// into {"error": message} (the KServe v2 error body).
#include <stdexcept>
#include <string>

namespace tlc::serve {

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace tlc::serve
