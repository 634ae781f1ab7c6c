// tlc serve: trained models behind HTTP (KServe v2 + /predict + /metrics), docs/SERVING.md.
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <set>

#include "../serve/server.h"
#include "commands.h"
#include "tlc/device.h"
#include "tlc/error.h"

namespace tlc::cli {
namespace {

namespace fs = std::filesystem;

struct ServeOptions {
  std::vector<std::string> models;
  serve::HttpOptions http;
  serve::RunnerOptions runner;
  int64_t max_queue_delay_us = 2000;
  int exit_timeout_s = 30;
  std::string device = "auto", engine = "auto", precision = "auto", resize;
  int tta = 0;
  std::string tta_augment;
};

bool valid_name(const std::string& n) {
  return !n.empty() && n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                           std::string::npos;
}

// NAME=PATH, or PATH named after its run folder (a folder, or a model.pt inside one) or its file stem.
std::pair<std::string, std::string> model_spec(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq != std::string::npos && spec.substr(0, eq).find('/') == std::string::npos) {
    const std::string name = spec.substr(0, eq);
    if (!valid_name(name))
      throw Error("model name '" + name + "' (in " + spec + ") may use only letters, digits, '_', '.' and '-'");
    return {name, spec.substr(eq + 1)};
  }
  fs::path p = fs::path(spec).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "runs/cats/" names the folder
  std::error_code ec;
  std::string name = fs::is_directory(p, ec) ? p.filename().string()
                     : (p.filename() == "model.pt" && !p.parent_path().filename().empty())
                         ? fs::absolute(p).parent_path().filename().string()
                         : p.stem().string();
  if (!valid_name(name))
    throw Error("cannot name the model at " + spec + " after its folder ('" + name + "'); give it a name: NAME=" + spec);
  return {name, spec};
}

int run_serve(const ServeOptions& o) {
  // SIGINT/SIGTERM are taken by sigwait below, never by a handler: blocked here, before any thread starts,
  // so every thread (HTTP, engine, LibTorch's pools) inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server

  serve::RunnerOptions ropt = o.runner;
  ropt.max_queue_delay = std::chrono::microseconds(o.max_queue_delay_us);
  std::vector<std::unique_ptr<serve::ModelRunner>> runners;
  std::set<std::string> names;
  const c10::Device device = resolve_device(o.device);
  for (const std::string& spec : o.models) {
    const auto [name, path] = model_spec(spec);
    if (!names.insert(name).second)
      throw Error("two models are named '" + name + "'; name them apart with NAME=PATH");
    ModelFile model = ModelFile::load(path);
    model.to(device);
    model.set_engine(o.engine, o.precision);
    if (!o.resize.empty()) model.set_resize(parse_resize_mode(o.resize));
    // Test-time augmentation for every request of every model, as `tlc predict --tta` does it (views drawn from
    // each image's pixels: a result does not depend on how requests were batched).
    if (o.tta > 0) model.set_tta(o.tta, tta_augmentation(model.meta(), o.tta_augment));
    std::cerr << "model " << name << ": " << resolve_model_path(path) << " (" << model.meta().classes.size()
              << " classes, " << model.meta().image_size << " px, " << to_string(model.meta().resize) << ")\n  "
              << model.engine_line() << std::endl;
    if (o.tta > 0)
      std::cerr << "  test-time augmentation: " << o.tta << " view(s) of " << to_string(model.tta_spec())
                << ", blended 0.25 plain + 0.75 augmented (each image costs " << o.tta + 1 << " backbone passes)"
                << std::endl;
    runners.push_back(std::make_unique<serve::ModelRunner>(name, std::move(model), ropt));
  }
  serve::Server server(std::move(runners), o.http, std::cerr);
  server.bind();
  server.start();
  const bool ipv6 = o.http.host.find(':') != std::string::npos;  // ::1 is written [::1] in a URL
  const std::string url = "http://" + (ipv6 ? "[" + o.http.host + "]" : o.http.host) + ":" + std::to_string(server.port());
  std::cerr << "listening on " << url << " (ready once every model is warmed up)" << std::endl;
  server.warm_up();
  std::cerr << "ready: POST " << url << "/predict, " << url << "/v2/models/NAME/infer; GET " << url
            << "/metrics; SIGTERM or Ctrl-C drains and stops" << std::endl;

  for (;;) {
    const timespec tick{0, 200'000'000};
    if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) break;
    if (server.failed()) {
      std::cerr << "tlc: error: the HTTP server stopped by itself" << std::endl;
      return 1;
    }
  }
  std::cerr << "stopping: no new connections; " << server.in_flight() << " request(s) in flight, answering them "
            << "(up to --exit-timeout " << o.exit_timeout_s << " s)" << std::endl;
  if (!server.drain(std::chrono::seconds(o.exit_timeout_s))) {
    std::cerr << "tlc: error: --exit-timeout " << o.exit_timeout_s << " s passed with " << server.in_flight()
              << " request(s) unanswered; exiting without them" << std::endl;
    std::_Exit(1);  // the HTTP and engine threads are still busy: no destructors may run under them
  }
  std::cerr << "stopped: every request received was answered" << std::endl;
  return 0;
}

}  // namespace

void setup_serve(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Serve trained models over HTTP: the KServe v2 protocol (Triton's clients work: IMAGE BYTES in, "
      "PROBABILITIES FP32 out, binary data and classification extensions), POST /predict for an image or "
      "multipart files (the JSON of `tlc predict --json`), GET /metrics (Prometheus). Requests are batched "
      "dynamically; every limit below is enforced. See docs/SERVING.md.");
  sub->add_option("models", o->models,
                  "model.pt files or run folders, each optionally NAME=PATH; a model's name (in /v2/models/NAME) "
                  "is its run folder's name unless given")
      ->required();
  sub->add_option("--host", o->http.host, "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every "
                  "interface, put it behind TLS and authentication)")->capture_default_str();
  sub->add_option("--port", o->http.port, "Port to listen on (0: any free port, printed at start)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  sub->add_option("--max-batch", o->runner.max_batch,
                  "Most images per model call (Triton's max_batch_size); a request with more is refused with 400 "
                  "(/predict splits its files); every size 1..N is warmed up before ready")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--max-queue-delay-us", o->max_queue_delay_us,
                  "How long the oldest queued request may wait for others to fill its batch (Triton's "
                  "max_queue_delay_microseconds); 0: run what is queued at once")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  sub->add_option("--max-queue", o->runner.max_queued_images,
                  "Most images waiting per model; beyond it requests get 503 with Retry-After (at least --max-batch)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  sub->add_option("--request-timeout-ms", o->http.request_timeout_ms,
                  "Longest time a request may wait in the queue and the model together; then 504")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{3'600'000}));
  sub->add_option("--exit-timeout", o->exit_timeout_s,
                  "On SIGTERM/SIGINT: stop accepting, answer the requests in flight for up to this many seconds, "
                  "exit 0 (1 when some were still unanswered)")
      ->capture_default_str()->check(CLI::Range(0, 3600));
  sub->add_option("--max-body-bytes", o->http.max_body_bytes,
                  "Largest request body; a larger Content-Length gets 413 before the body is read")
      ->capture_default_str()->check(CLI::Range(size_t{1024}, size_t{1} << 32));
  sub->add_option("--http-threads", o->http.http_threads,
                  "Connections served at once (each holds a thread while it is open, keep-alive included); images "
                  "are decoded on these threads")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--max-pending-connections", o->http.max_pending_connections,
                  "Accepted connections waiting for a free thread; beyond it new clients wait in the kernel's backlog")
      ->capture_default_str()->check(CLI::Range(1, 65536));
  sub->add_option("--keep-alive-max-requests", o->http.keep_alive_max_requests,
                  "Requests one connection may make before the server closes it")
      ->capture_default_str()->check(CLI::Range(1, 1'000'000));
  sub->add_option("--keep-alive-timeout", o->http.keep_alive_timeout_s,
                  "Seconds an idle keep-alive connection is kept (it holds a thread meanwhile)")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  sub->add_option("--read-timeout", o->http.read_timeout_s,
                  "Seconds a read from a client may stall before the connection is dropped")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  sub->add_option("--write-timeout", o->http.write_timeout_s,
                  "Seconds a write to a client may stall before the connection is dropped")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  sub->add_flag("--access-log", o->http.access_log, "Print one line per request to stderr (client, method, path, "
                "status, sizes)");
  add_model_input_flags(sub, o->resize, o->runner.max_pixels);
  sub->add_option("--device", o->device, "auto (CUDA when present), cpu or cuda")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_engine_flags(sub, o->engine, o->precision);
  add_tta_flags(sub, o->tta, o->tta_augment);
  sub->callback([o, exit_code] { *exit_code = run_serve(*o); });
}

}  // namespace tlc::cli
