#include "metrics.h"

#include <functional>

namespace tlc::serve {
namespace {

// Label values escape backslash, double quote and newline (the exposition format's rule).
std::string label_value(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\\' || c == '"') r += '\\';
    if (c == '\n') { r += "\\n"; continue; }
    r += c;
  }
  return r;
}

}  // namespace

std::string prometheus_text(const std::vector<std::unique_ptr<ModelRunner>>& models) {
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    std::function<std::string(ModelRunner&)> value;
  };
  const std::vector<Family> families = {
      {"tlc_inference_request_success", "counter", "Inference requests answered with success",
       [](ModelRunner& m) { return std::to_string(m.stats().request_success.load()); }},
      {"tlc_inference_request_failure", "counter",
       "Inference requests that failed (bad input, queue full, timeout, model error)",
       [](ModelRunner& m) { return std::to_string(m.stats().request_failure.load()); }},
      {"tlc_inference_count", "counter", "Images inferred (a request of N images counts N)",
       [](ModelRunner& m) { return std::to_string(m.stats().inference_count.load()); }},
      {"tlc_inference_exec_count", "counter",
       "Batches executed by the model; tlc_inference_count / tlc_inference_exec_count is the mean batch size",
       [](ModelRunner& m) { return std::to_string(m.stats().exec_count.load()); }},
      {"tlc_inference_request_duration_us", "counter", "Cumulative end-to-end time of successful requests (us)",
       [](ModelRunner& m) { return std::to_string(m.stats().request_us.load()); }},
      {"tlc_inference_queue_duration_us", "counter", "Cumulative time requests waited in the batching queue (us)",
       [](ModelRunner& m) { return std::to_string(m.stats().queue_us.load()); }},
      {"tlc_inference_compute_duration_us", "counter", "Cumulative time the model spent on batches (us)",
       [](ModelRunner& m) { return std::to_string(m.stats().compute_us.load()); }},
      {"tlc_inference_pending_request_count", "gauge", "Inference requests in flight (received, not yet answered)",
       [](ModelRunner& m) { return std::to_string(m.stats().in_flight.load()); }},
      {"tlc_inference_queue_images", "gauge", "Images waiting in the batching queue",
       [](ModelRunner& m) { return std::to_string(m.queued_images()); }},
  };
  std::string out;
  for (const Family& f : families) {
    out += std::string("# HELP ") + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
    for (const auto& m : models)
      out += std::string(f.name) + "{model=\"" + label_value(m->name()) + "\",version=\"1\"} " + f.value(*m) + "\n";
  }
  return out;
}

}  // namespace tlc::serve
