// The routes of `tlc serve`: KServe v2 (health, server and model metadata, model config, infer), the plain
// /predict for people and curl (the JSON of `tlc predict --json`), and /metrics.
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

#include "http_error.h"
#include "images.h"
#include "kserve.h"
#include "metrics.h"
#include "server.h"
#include "tlc/predict.h"

namespace tlc::serve {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

void send_json(Response& res, const json& j) {
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

int64_t micros_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

// Counts a request in flight from the moment its model is known until it is answered, and whether it succeeded.
class Tracked {
 public:
  explicit Tracked(ModelRunner& m) : stats_(m.stats()), t0_(Clock::now()) { ++stats_.in_flight; }
  ~Tracked() {
    --stats_.in_flight;
    if (ok_) {
      ++stats_.request_success;
      stats_.request_us += static_cast<uint64_t>(micros_since(t0_));
    } else {
      ++stats_.request_failure;
    }
  }
  void succeeded() { ok_ = true; }

 private:
  ModelStats& stats_;
  Clock::time_point t0_;
  bool ok_ = false;
};

// The model named in the path, checked against the version when one is given (every model has version 1).
ModelRunner& path_model(const Server& server, const Request& req) {
  ModelRunner* m = server.find_model(req.matches[1]);
  if (req.matches.size() > 2 && req.matches[2].matched && req.matches[2] != "1")
    throw HttpError(404, "model " + m->name() + " has no version " + req.matches[2].str() + "; it has version 1");
  return *m;
}

double query_number(const Request& req, const char* name, double fallback, double lo, double hi) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= lo && d <= hi))
    throw HttpError(400, std::string("query parameter ") + name + "=" + v + " is not a number in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return d;
}

void infer_route(const Server& server, const Request& req, Response& res) {
  ModelRunner& m = path_model(server, req);
  Tracked tracked(m);
  server.check_accepting();
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(server.options().request_timeout_ms);
  std::optional<size_t> header_length;
  if (req.has_header("Inference-Header-Content-Length")) {
    const std::string v = req.get_header_value("Inference-Header-Content-Length");
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') throw HttpError(400, "Inference-Header-Content-Length '" + v + "' is not a byte count");
    header_length = static_cast<size_t>(n);
  }
  const InferRequest r = parse_infer_request(req.body, header_length);
  if (r.batch() > m.max_batch())  // before decoding: a request cannot make us decode more than one batch
    throw HttpError(400, "the request has " + std::to_string(r.batch()) + " images, more than --max-batch " +
                             std::to_string(m.max_batch()) + " (send them in several requests)");
  std::vector<std::string> names;
  for (size_t i = 0; i < r.images.size(); ++i) names.push_back("IMAGE[" + std::to_string(i) + "]");
  const at::Tensor pixels = r.input_name == kImageInput ? decode_images(r.images, names, m.decode_options())
                                                        : resize_pixels(r.pixels, m.decode_options());
  const at::Tensor probs = server.infer(m, pixels, deadline);
  const InferResponse out = make_infer_response(m.name(), r, probs, m.meta().classes);
  if (out.header_length) {
    res.set_header("Inference-Header-Content-Length", std::to_string(*out.header_length));
    res.set_content(out.body, "application/octet-stream");
  } else {
    res.set_content(out.body, "application/json");
  }
  tracked.succeeded();
}

// POST /predict: a raw image body, or multipart with one or more files; ?top_k=, ?min_confidence=, ?model=.
void predict_route(const Server& server, const Request& req, Response& res) {
  ModelRunner& m = server.default_model(req.has_param("model") ? req.get_param_value("model") : "");
  Tracked tracked(m);
  server.check_accepting();
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(server.options().request_timeout_ms);
  const int top_k = static_cast<int>(query_number(req, "top_k", 3, 1, 1000));
  const double min_confidence = query_number(req, "min_confidence", 0, 0, 1);
  std::vector<std::string_view> files;
  std::vector<Prediction> preds;
  if (req.is_multipart_form_data()) {
    for (const auto& [field, part] : req.files) {
      files.emplace_back(part.content);
      preds.emplace_back();
      preds.back().path = part.filename.empty() ? field : part.filename;
    }
    if (files.empty()) throw HttpError(400, "the multipart body has no parts; send the images as file parts (curl -F file=@cat.jpg)");
  } else {
    if (req.body.empty()) throw HttpError(400, "the request body is empty; send an image (or multipart files)");
    files.emplace_back(req.body);
    preds.emplace_back();
    preds.back().path = "body";
  }
  std::vector<std::string> errors;
  const at::Tensor pixels = decode_each(files, m.decode_options(), errors);
  std::vector<int64_t> good;
  std::string all_errors;
  for (size_t i = 0; i < errors.size(); ++i) {
    preds[i].ok = errors[i].empty();
    preds[i].error = errors[i];
    if (preds[i].ok) good.push_back(static_cast<int64_t>(i));
    else all_errors += (all_errors.empty() ? "" : "; ") + preds[i].path + ": " + errors[i];
  }
  if (good.empty()) throw HttpError(400, "cannot decode " + all_errors);
  // Like `tlc predict`, files that decode are classified beside those that do not (whose entries say why);
  // more files than --max-batch go to the queue as several requests.
  const at::Tensor ok_pixels = at::index_select(pixels, 0, at::tensor(good, at::kLong));
  for (int64_t b0 = 0; b0 < ok_pixels.size(0); b0 += m.max_batch()) {
    const int64_t n = std::min(m.max_batch(), ok_pixels.size(0) - b0);
    const at::Tensor probs = server.infer(m, ok_pixels.narrow(0, b0, n), deadline).contiguous();
    for (int64_t i = 0; i < n; ++i) {
      const float* row = probs.data_ptr<float>() + i * probs.size(1);
      preds[static_cast<size_t>(good[static_cast<size_t>(b0 + i)])].probabilities.assign(row, row + probs.size(1));
    }
  }
  res.set_content(predictions_json(preds, m.meta().classes, top_k, min_confidence, 2) + "\n", "application/json");
  tracked.succeeded();
}

}  // namespace

void Server::install_routes() {
  httplib::Server& s = *http_;
  // Every handler answers its own errors as JSON with the status that fits.
  auto guarded = [this](std::function<void(const Request&, Response&)> fn) {
    return [this, fn](const Request& req, Response& res) {
      try {
        fn(req, res);
      } catch (const HttpError& e) {
        json_error(res, e.status(), e.what(), options_.retry_after_s);
      }
    };
  };
  s.Get("/v2", guarded([](const Request&, Response& res) {
    send_json(res, {{"name", "tlc"}, {"version", TLC_VERSION},
                    {"extensions", {"binary_tensor_data", "classification", "model_configuration"}}});
  }));
  s.Get("/v2/health/live", [](const Request&, Response& res) { res.status = 200; });
  s.Get("/v2/health/ready", guarded([this](const Request&, Response& res) {
    if (!ready()) throw HttpError(503, draining_ ? "the server is shutting down" : "the models are warming up");
    res.status = 200;
  }));
  const std::string model = "/v2/models/([^/]+)(?:/versions/([^/]+))?";
  s.Get(model, guarded([this](const Request& req, Response& res) {
    ModelRunner& m = path_model(*this, req);
    send_json(res, model_metadata(m.name(), m.meta(), m.max_batch()));
  }));
  s.Get(model + "/ready", guarded([this](const Request& req, Response& res) {
    ModelRunner& m = path_model(*this, req);
    if (!m.ready() || draining_) throw HttpError(503, "model " + m.name() + " is not ready");
    res.status = 200;
  }));
  s.Get(model + "/config", guarded([this](const Request& req, Response& res) {
    ModelRunner& m = path_model(*this, req);
    send_json(res, model_config(m.name(), m.meta(), m.max_batch()));
  }));
  s.Post(model + "/infer", guarded([this](const Request& req, Response& res) { infer_route(*this, req, res); }));
  s.Post("/predict", guarded([this](const Request& req, Response& res) { predict_route(*this, req, res); }));
  s.Get("/metrics", [this](const Request&, Response& res) {
    res.set_content(prometheus_text(models_), "text/plain; version=0.0.4");
  });
}

}  // namespace tlc::serve
