#pragma once
// The HTTP side of `tlc serve`: cpp-httplib (docs/SERVING.md says why) with every limit set explicitly, the
// KServe v2 routes, /predict and /metrics (routes.cpp), readiness, and the drain on shutdown.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "model_runner.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace tlc::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  size_t max_body_bytes = 64u << 20;      // larger bodies: 413 before they are read
  int http_threads = 16;                  // connections served at once (each keeps its thread while alive)
  int max_pending_connections = 64;       // accepted connections waiting for a thread; then accept() waits
  int keep_alive_max_requests = 100;      // requests per connection
  int keep_alive_timeout_s = 5;           // an idle connection is closed after this
  int read_timeout_s = 5, write_timeout_s = 5;  // per socket read/write (a stalled client is dropped)
  int64_t request_timeout_ms = 30000;     // queue + model time of one inference request: then 504
  int retry_after_s = 1;                  // the Retry-After of a 503
  bool access_log = false;
};

class Server {
 public:
  Server(std::vector<std::unique_ptr<ModelRunner>> models, const HttpOptions& options, std::ostream& log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (port 0: any free port; port() says which). Throws tlc::Error naming the address.
  void bind();
  int port() const { return port_; }
  // Serves on a thread of its own: /v2/health/live answers at once, ready stays 503 until warm_up().
  void start();
  // Warms every model up (every batch size) and starts their engine threads; then ready turns 200.
  void warm_up();
  // Stops accepting (ready turns 503, the listening socket closes), answers every request already received,
  // then stops the engine threads. False when `timeout` passed first (requests were still in flight).
  bool drain(std::chrono::seconds timeout);
  // The thread serving HTTP ended by itself (an error), not by drain().
  bool failed() const;
  int64_t in_flight() const;

  // For the routes (routes.cpp).
  ModelRunner* find_model(const std::string& name) const;  // throws HttpError(404) naming the served models
  ModelRunner& default_model(const std::string& requested) const;  // /predict's ?model=, or the only model
  const std::vector<std::unique_ptr<ModelRunner>>& models() const { return models_; }
  bool ready() const;
  // Throws HttpError(503) unless the server takes new inference requests (warmed up, not draining). Checked
  // once when a request arrives: a request received before a drain is answered whole.
  void check_accepting() const;
  const HttpOptions& options() const { return options_; }
  // Queues pixels on a model and waits for the answer (up to the request's deadline); HttpError on 503
  // (queue full, or the queue closed), 400 (more images than --max-batch), 504 (deadline), 500 (the model failed).
  at::Tensor infer(ModelRunner& model, const at::Tensor& pixels, Clock::time_point deadline) const;

 private:
  void install_limits();
  void install_routes();  // routes.cpp
  std::vector<std::unique_ptr<ModelRunner>> models_;
  HttpOptions options_;
  std::ostream& log_;
  std::mutex log_mu_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::atomic<bool> draining_{false}, warmed_{false}, stopped_by_drain_{false};
  std::future<void> serving_;
};

// Writes {"error": message} with the status (and Retry-After for a 503).
void json_error(httplib::Response& res, int status, const std::string& message, int retry_after_s);

}  // namespace tlc::serve
