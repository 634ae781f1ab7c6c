#pragma once
// The KServe v2 (Open Inference Protocol) messages of a tlc model, as Triton writes them, so that Triton's
// clients work unchanged: the model metadata and config, and the inference request and response with the
// binary tensor data and classification extensions. Pure functions of bytes and tensors (no HTTP, no model),
// each failure an HttpError(400, what was expected and what came).
//
//   inputs:  IMAGE    BYTES [N] (or [N,1]): encoded image files in any format tlc reads
//            PIXELS   UINT8 [N,H,W,3]: RGB pixels, resized to the model's size as decoded images are
//   outputs: PROBABILITIES FP32 [N,K], classes in the metadata's order; with parameters.classification = k
//            BYTES [N,k] of "score:index:label", best first (Triton's classification extension)
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlc/model_file.h"

namespace tlc::serve {

inline constexpr const char* kImageInput = "IMAGE";
inline constexpr const char* kPixelsInput = "PIXELS";
inline constexpr const char* kProbabilitiesOutput = "PROBABILITIES";
// The JSON part of a request is parsed into a DOM several times its size (PIXELS as JSON numbers: about 4x),
// so it has a limit of its own below the body's; images belong in the binary part.
inline constexpr size_t kMaxJsonBytes = 8u << 20;

struct InferRequest {
  std::string id;
  std::string input_name;               // kImageInput or kPixelsInput
  std::vector<std::string_view> images;  // IMAGE: each element's bytes (views into the request body)
  at::Tensor pixels;                     // PIXELS: uint8 [N,H,W,3]
  bool binary_output = false;            // PROBABILITIES as binary tensor data
  int64_t classification = 0;            // > 0: top-k classification strings instead of probabilities
  int64_t batch() const { return input_name == kImageInput ? static_cast<int64_t>(images.size()) : pixels.size(0); }
};

// `body` is the whole request body; `header_length` the Inference-Header-Content-Length header when present
// (the JSON is then body[0, header_length), followed by the binary data of the inputs in order). The views in
// the result point into `body`, which must outlive it.
InferRequest parse_infer_request(const std::string& body, std::optional<size_t> header_length);

struct InferResponse {
  std::string body;
  std::optional<size_t> header_length;  // set when binary data follows the JSON
};
// `probabilities`: float [N,K] on the CPU, one row per input element.
InferResponse make_infer_response(const std::string& model_name, const InferRequest& request,
                                  const at::Tensor& probabilities, const std::vector<std::string>& classes);

// Triton's "score:index:label" strings of one row's top k.
std::vector<std::string> classification_strings(const float* row, int64_t classes, int64_t k,
                                                const std::vector<std::string>& labels);

// GET /v2/models/{name}: inputs, outputs (with the batch dimension as -1), and what a client needs to
// prepare pixels itself: classes, image size, normalization, resize mode.
nlohmann::json model_metadata(const std::string& name, const ModelMeta& meta, int64_t max_batch);
// GET /v2/models/{name}/config: the same in Triton's model-configuration form (perf_analyzer reads it).
nlohmann::json model_config(const std::string& name, const ModelMeta& meta, int64_t max_batch);

}  // namespace tlc::serve
