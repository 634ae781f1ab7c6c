#include "server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>

#include "http_error.h"
#include "tlc/error.h"

namespace tlc::serve {
namespace {

// httplib's own ThreadPool queues accepted connections without bound (0.11.4 has no limit). This one holds
// at most `max_pending` waiting connections; beyond that the accepting thread waits, so further clients wait
// in the kernel's listen backlog instead of in our memory.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t max_pending) : max_pending_(max_pending) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lk(mu_);
    not_full_.wait(lk, [&] { return jobs_.size() < max_pending_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    lk.unlock();
    not_empty_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      shutdown_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        not_empty_.wait(lk, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shut down and nothing left: connections already accepted are served
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      not_full_.notify_one();
      fn();
    }
  }
  const size_t max_pending_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool shutdown_ = false;
};

}  // namespace

void json_error(httplib::Response& res, int status, const std::string& message, int retry_after_s) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", std::to_string(retry_after_s));
  res.set_content(nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

Server::Server(std::vector<std::unique_ptr<ModelRunner>> models, const HttpOptions& options, std::ostream& log)
    : models_(std::move(models)), options_(options), log_(log), http_(std::make_unique<httplib::Server>()) {
  install_limits();
  install_routes();
}

Server::~Server() {
  if (serving_.valid()) {
    http_->stop();
    serving_.wait();
  }
}

void Server::install_limits() {
  httplib::Server& s = *http_;
  const size_t threads = static_cast<size_t>(std::max(1, options_.http_threads));
  const size_t pending = static_cast<size_t>(std::max(1, options_.max_pending_connections));
  s.new_task_queue = [threads, pending] { return new BoundedPool(threads, pending); };
  s.set_payload_max_length(options_.max_body_bytes);
  s.set_keep_alive_max_count(static_cast<size_t>(std::max(1, options_.keep_alive_max_requests)));
  s.set_keep_alive_timeout(options_.keep_alive_timeout_s);
  s.set_read_timeout(options_.read_timeout_s, 0);
  s.set_write_timeout(options_.write_timeout_s, 0);
  s.set_tcp_nodelay(true);  // small JSON answers must not wait for Nagle
  // httplib's default sets SO_REUSEPORT on Linux: a second server on the same port would then bind too and
  // silently take half of the connections. SO_REUSEADDR alone still allows a restart while old connections
  // linger in TIME_WAIT, and makes a port in use a clear error at bind().
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Runs once the headers are read and before the body is: refuse what we will not read.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "POST" && req.method != "PUT") return httplib::Server::HandlerResponse::Unhandled;
    if (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length")) {
      json_error(res, 411, "a Content-Length header is required (chunked request bodies are not accepted)",
                 options_.retry_after_s);
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string enc = req.get_header_value("Content-Encoding");
    if (!enc.empty() && enc != "identity") {
      // A compressed body could expand past the body limit after it was checked (a decompression bomb).
      json_error(res, 415, "Content-Encoding " + enc + " is not accepted; send the body uncompressed",
                 options_.retry_after_s);
      return httplib::Server::HandlerResponse::Handled;
    }
    // httplib parses form-urlencoded bodies itself and refuses those over 8 KiB with a bare 413; curl's -d and
    // --data-binary send that type by default, so say what to send instead.
    if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0 &&
        (req.path == "/predict" || req.get_header_value<uint64_t>("Content-Length") > 8192)) {
      json_error(res, 415,
                 "Content-Type application/x-www-form-urlencoded is not read here; send an image with "
                 "-H 'Content-Type: application/octet-stream' (or multipart: curl -F file=@cat.jpg), and JSON "
                 "with -H 'Content-Type: application/json'",
                 options_.retry_after_s);
      return httplib::Server::HandlerResponse::Handled;
    }
    const uint64_t len = req.get_header_value<uint64_t>("Content-Length");
    if (len > options_.max_body_bytes) {
      json_error(res, 413, "the request body is " + std::to_string(len) + " bytes, more than --max-body-bytes " +
                               std::to_string(options_.max_body_bytes),
                 options_.retry_after_s);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Every 4xx/5xx that no route filled (httplib's own 400/404/413/414, ...) still answers in JSON.
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    switch (res.status) {
      case 404: msg = "no route " + req.method + " " + req.path + "; see GET /v2, /v2/models/{name}, POST "
                      "/v2/models/{name}/infer, POST /predict, GET /metrics"; break;
      case 413: msg = "the request body is larger than --max-body-bytes " + std::to_string(options_.max_body_bytes); break;
      case 414: msg = "the request URI is too long"; break;
      case 400: msg = "malformed HTTP request (headers, or a multipart body that cannot be parsed)"; break;
      default: msg = "HTTP error " + std::to_string(res.status);
    }
    json_error(res, res.status, msg, options_.retry_after_s);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    json_error(res, 500, msg, options_.retry_after_s);
  });
  if (options_.access_log) {
    s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      std::lock_guard<std::mutex> lk(log_mu_);
      log_ << "tlc serve: " << req.remote_addr << " " << req.method << " " << req.path << " " << res.status << " "
           << req.body.size() << "B in, " << res.body.size() << "B out" << std::endl;
    });
  }
}

void Server::bind() {
  // Port 0 takes any free port (tests); port() then says which.
  const int port = options_.port == 0 ? http_->bind_to_any_port(options_.host)
                                      : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port <= 0)
    throw Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                " (in use, or not an address of this machine); choose another with --host/--port");
  port_ = port;
}

void Server::start() {
  serving_ = std::async(std::launch::async, [this] { http_->listen_after_bind(); });
}

void Server::warm_up() {
  for (auto& m : models_) {
    const auto t0 = Clock::now();
    m->warm_up_and_start();
    std::lock_guard<std::mutex> lk(log_mu_);
    log_ << "model " << m->name() << ": warmed up (batch sizes 1.." << m->max_batch() << ") in "
         << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms" << std::endl;
  }
  warmed_ = true;
}

bool Server::ready() const { return warmed_ && !draining_; }

void Server::check_accepting() const {
  if (!ready()) throw HttpError(503, draining_ ? "the server is shutting down" : "the server is warming up");
}

bool Server::failed() const {
  return serving_.valid() && !stopped_by_drain_ &&
         serving_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

int64_t Server::in_flight() const {
  int64_t n = 0;
  for (const auto& m : models_) n += m->stats().in_flight.load();
  return n;
}

bool Server::drain(std::chrono::seconds timeout) {
  draining_ = true;
  stopped_by_drain_ = true;
  // stop() closes the listening socket; listen_after_bind() then returns once every connection's thread has
  // finished its request (the pool's shutdown joins them), idle keep-alive connections after their timeout.
  http_->stop();
  const auto deadline = Clock::now() + timeout;
  if (serving_.valid() && serving_.wait_until(deadline) != std::future_status::ready) return false;
  for (auto& m : models_) m->drain();
  return true;
}

ModelRunner* Server::find_model(const std::string& name) const {
  for (const auto& m : models_)
    if (m->name() == name) return m.get();
  std::string names;
  for (const auto& m : models_) names += (names.empty() ? "" : ", ") + m->name();
  throw HttpError(404, "unknown model '" + name + "'; this server serves: " + names);
}

ModelRunner& Server::default_model(const std::string& requested) const {
  if (!requested.empty()) return *find_model(requested);
  if (models_.size() == 1) return *models_.front();
  throw HttpError(400, "this server serves several models: name one with ?model=NAME");
}

at::Tensor Server::infer(ModelRunner& model, const at::Tensor& pixels, Clock::time_point deadline) const {
  std::future<JobResult> fut;
  switch (model.submit(pixels, deadline, &fut)) {
    case BatchQueue::Admit::ok: break;
    case BatchQueue::Admit::full:
      throw HttpError(503, "model " + model.name() + "'s queue is full (" + std::to_string(model.queued_images()) +
                               " images waiting; --max-queue); retry later");
    case BatchQueue::Admit::too_large:
      throw HttpError(400, "the request has " + std::to_string(pixels.size(0)) + " images, more than --max-batch " +
                               std::to_string(model.max_batch()) + " (send them in several requests)");
    case BatchQueue::Admit::closed: throw HttpError(503, "the server is shutting down");
  }
  // The queue answers a request still waiting at its deadline; one already running gets a short grace.
  if (fut.wait_until(deadline + std::chrono::seconds(5)) != std::future_status::ready)
    throw HttpError(504, "model " + model.name() + " did not answer within --request-timeout-ms");
  JobResult r = fut.get();
  if (r.status != 200) throw HttpError(r.status, r.error);
  return r.probabilities;
}

}  // namespace tlc::serve
