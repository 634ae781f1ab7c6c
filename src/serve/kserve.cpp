#include "kserve.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "http_error.h"

namespace tlc::serve {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw HttpError(400, message); }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

std::vector<int64_t> read_shape(const json& input, const std::string& name) {
  if (!input.contains("shape") || !input["shape"].is_array())
    bad("input " + name + " has no \"shape\" array");
  std::vector<int64_t> shape;
  for (const json& d : input["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) bad("input " + name + ": shape entries must be integers >= 0");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// JSON tensor data may be flat or nested (row-major); either way its elements in order.
void flatten(const json& data, std::vector<const json*>& out) {
  if (data.is_array()) {
    for (const json& e : data) flatten(e, out);
  } else {
    out.push_back(&data);
  }
}

// The binary section is consumed input by input, in the order of "inputs".
struct BinaryCursor {
  const char* p;
  size_t left;
  std::string_view take(size_t n, const std::string& name) {
    if (n > left)
      bad("input " + name + " says binary_data_size " + std::to_string(n) + " but only " + std::to_string(left) +
          " bytes of binary data are left in the body");
    std::string_view v(p, n);
    p += n;
    left -= n;
    return v;
  }
};

std::optional<size_t> binary_size(const json& input, const std::string& name) {
  if (!input.contains("parameters") || !input["parameters"].is_object()) return std::nullopt;
  const json& p = input["parameters"];
  if (!p.contains("binary_data_size")) return std::nullopt;
  if (!p["binary_data_size"].is_number_unsigned()) bad("input " + name + ": binary_data_size must be an integer >= 0");
  return p["binary_data_size"].get<size_t>();
}

void read_image_input(const json& input, BinaryCursor& bin, InferRequest& r) {
  const std::vector<int64_t> shape = read_shape(input, kImageInput);
  if (input.value("datatype", "") != "BYTES")
    bad(std::string("input IMAGE must have datatype BYTES (encoded image files), got \"") +
        input.value("datatype", "") + "\"");
  if (!(shape.size() == 1 || (shape.size() == 2 && shape[1] == 1)))
    bad("input IMAGE must have shape [N] or [N,1], got " + shape_str(shape));
  const int64_t n = shape[0];
  if (const auto size = binary_size(input, kImageInput)) {
    // Binary BYTES: each element is a 4-byte little-endian length, then that many bytes.
    std::string_view all = bin.take(*size, kImageInput);
    while (!all.empty()) {
      if (all.size() < 4) bad("input IMAGE: binary data ends inside an element's 4-byte length");
      const auto* u = reinterpret_cast<const unsigned char*>(all.data());
      const size_t len = u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<size_t>(u[3]) << 24);
      if (len > all.size() - 4) bad("input IMAGE: an element says " + std::to_string(len) + " bytes, only " +
                                    std::to_string(all.size() - 4) + " follow");
      r.images.emplace_back(all.data() + 4, len);
      all.remove_prefix(4 + len);
    }
  } else {
    if (!input.contains("data")) bad("input IMAGE has neither \"data\" nor parameters.binary_data_size");
    std::vector<const json*> elems;
    flatten(input["data"], elems);
    for (const json* e : elems) {
      if (!e->is_string()) bad("input IMAGE: JSON data elements must be strings (BYTES); send images as binary data");
      const std::string& s = e->get_ref<const std::string&>();
      r.images.emplace_back(s.data(), s.size());
    }
  }
  if (static_cast<int64_t>(r.images.size()) != n)
    bad("input IMAGE has shape " + shape_str(shape) + " but carries " + std::to_string(r.images.size()) + " element(s)");
}

void read_pixels_input(const json& input, BinaryCursor& bin, InferRequest& r) {
  const std::vector<int64_t> shape = read_shape(input, kPixelsInput);
  if (input.value("datatype", "") != "UINT8")
    bad(std::string("input PIXELS must have datatype UINT8, got \"") + input.value("datatype", "") + "\"");
  if (shape.size() != 4 || shape[3] != 3 || shape[1] < 1 || shape[2] < 1)
    bad("input PIXELS must have shape [N,H,W,3] (RGB), got " + shape_str(shape));
  const int64_t count = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  r.pixels = at::empty(shape, at::kByte);
  uint8_t* dst = r.pixels.data_ptr<uint8_t>();
  if (const auto size = binary_size(input, kPixelsInput)) {
    if (static_cast<int64_t>(*size) != count)
      bad("input PIXELS of shape " + shape_str(shape) + " needs " + std::to_string(count) +
          " bytes of binary data, binary_data_size says " + std::to_string(*size));
    std::string_view v = bin.take(*size, kPixelsInput);
    std::memcpy(dst, v.data(), v.size());
  } else {
    if (!input.contains("data")) bad("input PIXELS has neither \"data\" nor parameters.binary_data_size");
    std::vector<const json*> elems;
    flatten(input["data"], elems);
    if (static_cast<int64_t>(elems.size()) != count)
      bad("input PIXELS has shape " + shape_str(shape) + " (" + std::to_string(count) + " values) but carries " +
          std::to_string(elems.size()));
    for (size_t i = 0; i < elems.size(); ++i) {
      if (!elems[i]->is_number_integer() || elems[i]->get<int64_t>() < 0 || elems[i]->get<int64_t>() > 255)
        bad("input PIXELS: element " + std::to_string(i) + " is not an integer in [0, 255]");
      dst[i] = static_cast<uint8_t>(elems[i]->get<int64_t>());
    }
  }
}

void read_outputs(const json& req, InferRequest& r) {
  if (req.contains("parameters") && req["parameters"].is_object()) {
    const json& p = req["parameters"];
    if (p.contains("binary_data_output") && p["binary_data_output"].is_boolean())
      r.binary_output = p["binary_data_output"].get<bool>();
  }
  if (!req.contains("outputs")) return;
  if (!req["outputs"].is_array()) bad("\"outputs\" must be an array");
  for (const json& o : req["outputs"]) {
    const std::string name = o.is_object() ? o.value("name", "") : "";
    if (name != kProbabilitiesOutput)
      bad("unknown output \"" + name + "\"; the model has one output, " + kProbabilitiesOutput);
    if (!o.contains("parameters") || !o["parameters"].is_object()) continue;
    const json& p = o["parameters"];
    if (p.contains("binary_data")) {
      if (!p["binary_data"].is_boolean()) bad("output parameter binary_data must be true or false");
      r.binary_output = p["binary_data"].get<bool>();
    }
    if (p.contains("classification")) {
      if (!p["classification"].is_number_integer() || p["classification"].get<int64_t>() < 1)
        bad("output parameter classification must be an integer >= 1 (how many classes to return)");
      r.classification = p["classification"].get<int64_t>();
    }
  }
}

}  // namespace

InferRequest parse_infer_request(const std::string& body, std::optional<size_t> header_length) {
  const size_t hlen = header_length.value_or(body.size());
  if (hlen > body.size())
    bad("Inference-Header-Content-Length is " + std::to_string(hlen) + " but the body has only " +
        std::to_string(body.size()) + " bytes");
  if (hlen > kMaxJsonBytes)
    bad("the JSON part of the request is " + std::to_string(hlen) + " bytes, more than " +
        std::to_string(kMaxJsonBytes) + "; send images and pixels as binary data (Inference-Header-Content-Length)");
  json req;
  try {
    req = json::parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(hlen));
  } catch (const json::parse_error& e) {
    bad(std::string("malformed JSON in the inference request: ") + e.what());
  }
  if (!req.is_object()) bad("the inference request must be a JSON object");
  InferRequest r;
  if (req.contains("id")) {
    if (!req["id"].is_string()) bad("\"id\" must be a string");
    r.id = req["id"].get<std::string>();
  }
  if (!req.contains("inputs") || !req["inputs"].is_array() || req["inputs"].size() != 1)
    bad("the inference request needs \"inputs\" with exactly one tensor: IMAGE (BYTES [N]) or PIXELS (UINT8 [N,H,W,3])");
  const json& input = req["inputs"][0];
  if (!input.is_object()) bad("each input must be a JSON object");
  BinaryCursor bin{body.data() + hlen, body.size() - hlen};
  r.input_name = input.value("name", "");
  if (r.input_name == kImageInput) read_image_input(input, bin, r);
  else if (r.input_name == kPixelsInput) read_pixels_input(input, bin, r);
  else bad("unknown input \"" + r.input_name + "\"; the model takes IMAGE (BYTES [N]) or PIXELS (UINT8 [N,H,W,3])");
  if (bin.left != 0)
    bad(std::to_string(bin.left) + " bytes of binary data are left over after the inputs' binary_data_size");
  if (r.batch() < 1) bad("input " + r.input_name + " has no elements");
  read_outputs(req, r);
  return r;
}

std::vector<std::string> classification_strings(const float* row, int64_t classes, int64_t k,
                                                const std::vector<std::string>& labels) {
  std::vector<int64_t> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return row[a] > row[b]; });
  std::vector<std::string> out;
  for (int64_t i = 0; i < std::min(k, classes); ++i) {
    const int64_t c = order[static_cast<size_t>(i)];
    out.push_back(std::to_string(row[c]) + ":" + std::to_string(c) + ":" + labels.at(static_cast<size_t>(c)));
  }
  return out;
}

InferResponse make_infer_response(const std::string& model_name, const InferRequest& request,
                                  const at::Tensor& probabilities, const std::vector<std::string>& classes) {
  const at::Tensor probs = probabilities.to(at::kFloat).contiguous();
  const int64_t n = probs.size(0), k = probs.size(1);
  const float* data = probs.data_ptr<float>();
  json out = {{"name", kProbabilitiesOutput}};
  std::string binary;
  if (request.classification > 0) {
    const int64_t top = std::min(request.classification, k);
    out["datatype"] = "BYTES";
    out["shape"] = {n, top};
    json flat = json::array();
    for (int64_t i = 0; i < n; ++i) {
      for (const std::string& s : classification_strings(data + i * k, k, top, classes)) {
        if (request.binary_output) {
          const auto len = static_cast<uint32_t>(s.size());
          const char le[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                              static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
          binary.append(le, 4);
          binary += s;
        } else {
          flat.push_back(s);
        }
      }
    }
    if (!request.binary_output) out["data"] = flat;
  } else {
    out["datatype"] = "FP32";
    out["shape"] = {n, k};
    if (request.binary_output) {
      // Little-endian float32, as the binary tensor data extension specifies (and x86/ARM store them).
      binary.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(n * k) * sizeof(float));
    } else {
      out["data"] = std::vector<float>(data, data + n * k);
    }
  }
  if (request.binary_output) out["parameters"] = {{"binary_data_size", binary.size()}};
  json resp = {{"model_name", model_name}, {"model_version", "1"}, {"outputs", json::array({out})}};
  if (!request.id.empty()) resp["id"] = request.id;
  InferResponse r;
  r.body = resp.dump(-1, ' ', false, json::error_handler_t::replace);
  if (request.binary_output) {
    r.header_length = r.body.size();
    r.body += binary;
  }
  return r;
}

json model_metadata(const std::string& name, const ModelMeta& meta, int64_t max_batch) {
  const int64_t k = static_cast<int64_t>(meta.classes.size());
  return {{"name", name},
          {"versions", {"1"}},
          {"platform", "tlc_torchscript"},
          {"inputs",
           {{{"name", kImageInput}, {"datatype", "BYTES"}, {"shape", {-1, 1}}},
            {{"name", kPixelsInput}, {"datatype", "UINT8"}, {"shape", {-1, -1, -1, 3}}}}},
          {"outputs", {{{"name", kProbabilitiesOutput}, {"datatype", "FP32"}, {"shape", {-1, k}}}}},
          {"parameters",
           {{"classes", meta.classes},
            {"image_size", meta.image_size},
            {"normalize", to_string(meta.normalize)},
            {"resize", to_string(meta.resize)},
            {"max_batch_size", max_batch}}}};
}

json model_config(const std::string& name, const ModelMeta& meta, int64_t max_batch) {
  const int64_t k = static_cast<int64_t>(meta.classes.size());
  // Triton's configuration leaves the batch dimension out of dims; a BYTES input of one element per image
  // is dims [1] there (clients then send shape [N,1], which the server takes as well as [N]). A request sends
  // IMAGE or PIXELS, so both are optional (perf_analyzer then sends only the inputs its data names).
  return {{"name", name},
          {"platform", "tlc_torchscript"},
          {"max_batch_size", max_batch},
          {"input",
           {{{"name", kImageInput}, {"data_type", "TYPE_STRING"}, {"dims", {1}}, {"optional", true}},
            {{"name", kPixelsInput}, {"data_type", "TYPE_UINT8"}, {"dims", {-1, -1, 3}}, {"optional", true}}}},
          {"output", {{{"name", kProbabilitiesOutput}, {"data_type", "TYPE_FP32"}, {"dims", {k}}}}},
          {"dynamic_batching", json::object()},
          {"parameters", {{"classes", {{"string_value", json(meta.classes).dump()}}}}}};
}

}  // namespace tlc::serve
