// The units of `tlc serve` without HTTP: the batching queue, the KServe v2 messages, request images to model
// input, and the model runner on a tiny model. (The HTTP side: tests/python/test_serve.py.)
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <thread>

#include "../src/serve/batcher.h"
#include "../src/serve/http_error.h"
#include "../src/serve/images.h"
#include "../src/serve/kserve.h"
#include "../src/serve/model_runner.h"
#include "test_util.h"
#include "tlc/predict.h"
#include "tlc/trainer.h"

using namespace tlc::serve;
using json = nlohmann::json;
using std::chrono::microseconds;

namespace {

JobPtr job_of(int64_t images, Clock::time_point deadline = Clock::time_point::max()) {
  auto j = std::make_shared<Job>();
  j->pixels = at::zeros({images, 2, 2, 3}, at::kByte);
  j->deadline = deadline;
  return j;
}

std::vector<int64_t> sizes(const std::vector<JobPtr>& batch) {
  std::vector<int64_t> s;
  for (const auto& j : batch) s.push_back(j->images());
  return s;
}

// The status of a failed request, expecting HttpError.
template <typename F>
std::pair<int, std::string> http_error_of(F&& f) {
  try {
    f();
  } catch (const HttpError& e) {
    return {e.status(), e.what()};
  }
  return {0, ""};
}

std::string le32(uint32_t n) {
  const char b[4] = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char((n >> 24) & 0xff)};
  return std::string(b, 4);
}

}  // namespace

TEST(ServeQueue, TakesWholeRequestsInArrivalOrderUpToMaxBatch) {
  BatchQueue q(4, microseconds(10'000'000), 16);  // a long delay: only a full batch may leave at once
  for (int64_t n : {1, 2, 2, 1}) ASSERT_EQ(q.push(job_of(n)), BatchQueue::Admit::ok);
  EXPECT_EQ(sizes(q.next_batch()), (std::vector<int64_t>{1, 2}));  // 1+2+2 > 4: the third waits
  EXPECT_EQ(q.queued_images(), 3);
  q.close();  // a closed queue hands out what is left without waiting for the delay
  EXPECT_EQ(sizes(q.next_batch()), (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(q.next_batch().empty());
  EXPECT_EQ(q.push(job_of(1)), BatchQueue::Admit::closed);
}

TEST(ServeQueue, IsBoundedInImagesAndRefusesRequestsLargerThanABatch) {
  BatchQueue q(4, microseconds(0), 6);
  EXPECT_EQ(q.push(job_of(4)), BatchQueue::Admit::ok);
  EXPECT_EQ(q.push(job_of(2)), BatchQueue::Admit::ok);
  EXPECT_EQ(q.push(job_of(1)), BatchQueue::Admit::full);
  EXPECT_EQ(q.push(job_of(5)), BatchQueue::Admit::too_large);
  EXPECT_EQ(q.queued_images(), 6);
  EXPECT_EQ(sizes(q.next_batch()), (std::vector<int64_t>{4}));
  EXPECT_EQ(q.push(job_of(1)), BatchQueue::Admit::ok);  // room again
}

TEST(ServeQueue, ZeroDelayRunsWhateverIsQueued) {
  BatchQueue q(8, microseconds(0), 8);
  ASSERT_EQ(q.push(job_of(1)), BatchQueue::Admit::ok);
  EXPECT_EQ(sizes(q.next_batch()), (std::vector<int64_t>{1}));
}

TEST(ServeQueue, ARequestPastItsDeadlineGets504AndNeverReachesABatch) {
  BatchQueue q(4, microseconds(0), 8);
  JobPtr late = job_of(1, Clock::now() - std::chrono::milliseconds(1));
  auto late_result = late->result.get_future();
  ASSERT_EQ(q.push(late), BatchQueue::Admit::ok);
  ASSERT_EQ(q.push(job_of(2)), BatchQueue::Admit::ok);
  EXPECT_EQ(sizes(q.next_batch()), (std::vector<int64_t>{2}));
  const JobResult r = late_result.get();
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
}

TEST(ServeQueue, ManyProducersOneConsumerEveryRequestAnsweredOnce) {
  BatchQueue q(8, microseconds(500), 1000);
  constexpr int kProducers = 4, kEach = 50;
  std::vector<std::future<JobResult>> results[kProducers];
  std::thread consumer([&] {
    for (;;) {
      auto batch = q.next_batch();
      if (batch.empty()) return;
      int64_t n = 0;
      for (auto& j : batch) n += j->images();
      EXPECT_LE(n, 8);
      for (auto& j : batch) {
        JobResult r;
        r.probabilities = at::full({j->images(), 1}, static_cast<float>(n));
        j->result.set_value(r);
      }
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        JobPtr j = job_of(1 + (i % 3));
        results[p].push_back(j->result.get_future());
        ASSERT_EQ(q.push(j), BatchQueue::Admit::ok);
      }
    });
  for (auto& t : producers) t.join();
  for (auto& rs : results)
    for (auto& f : rs) EXPECT_EQ(f.get().status, 200);
  q.close();
  consumer.join();
}

TEST(ServeKServe, ParsesBinaryImagesAndBinaryOutputRequest) {
  const std::string a = "first file", b = "second";
  const std::string bin = le32(a.size()) + a + le32(b.size()) + b;
  const json header = {{"id", "r1"},
                       {"inputs", {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {2}},
                                    {"parameters", {{"binary_data_size", bin.size()}}}}}},
                       {"outputs", {{{"name", "PROBABILITIES"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string text = header.dump();
  const std::string body = text + bin;
  const InferRequest r = parse_infer_request(body, text.size());
  EXPECT_EQ(r.id, "r1");
  EXPECT_EQ(r.input_name, "IMAGE");
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(std::string(r.images[0]), a);
  EXPECT_EQ(std::string(r.images[1]), b);
  EXPECT_TRUE(r.binary_output);
  EXPECT_EQ(r.classification, 0);

  const at::Tensor probs = at::tensor({0.25f, 0.75f, 0.5f, 0.5f}).view({2, 2});
  const InferResponse out = make_infer_response("m", r, probs, {"cat", "dog"});
  ASSERT_TRUE(out.header_length.has_value());
  const json resp = json::parse(out.body.substr(0, *out.header_length));
  EXPECT_EQ(resp["id"], "r1");
  EXPECT_EQ(resp["outputs"][0]["shape"], json({2, 2}));
  EXPECT_EQ(resp["outputs"][0]["parameters"]["binary_data_size"], 16);
  ASSERT_EQ(out.body.size(), *out.header_length + 16);
  float got[4];
  std::memcpy(got, out.body.data() + *out.header_length, 16);
  EXPECT_EQ(got[1], 0.75f);
  EXPECT_EQ(got[3], 0.5f);
}

TEST(ServeKServe, ParsesNestedJsonPixelsAndAnswersClassificationStrings) {
  json data = json::array();
  for (int i = 0; i < 2 * 3; ++i) data.push_back({{i, i, i}});
  const json req = {{"inputs", {{{"name", "PIXELS"}, {"datatype", "UINT8"}, {"shape", {1, 2, 3, 3}}, {"data", data}}}},
                    {"outputs", {{{"name", "PROBABILITIES"}, {"parameters", {{"classification", 2}}}}}}};
  const InferRequest r = parse_infer_request(req.dump(), std::nullopt);
  ASSERT_EQ(r.pixels.sizes(), (at::IntArrayRef{1, 2, 3, 3}));
  EXPECT_EQ(r.pixels[0][1][2][1].item<uint8_t>(), 5);
  const at::Tensor probs = at::tensor({0.1f, 0.7f, 0.2f}).view({1, 3});
  const json resp = json::parse(make_infer_response("m", r, probs, {"a", "b", "c"}).body);
  EXPECT_EQ(resp["outputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(resp["outputs"][0]["shape"], json({1, 2}));
  EXPECT_EQ(resp["outputs"][0]["data"], json({"0.700000:1:b", "0.200000:2:c"}));
}

TEST(ServeKServe, EveryMalformedRequestIsA400ThatNamesTheProblem) {
  const auto image_input = [](const json& extra) {
    json in = {{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {"x"}}};
    if (extra.is_object()) in.update(extra);
    return json{{"inputs", {in}}}.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"inputs\": [", "malformed JSON"},
      {"[1, 2]", "JSON object"},
      {json{{"inputs", json::array()}}.dump(), "exactly one tensor"},
      {image_input({{"datatype", "FP32"}}), "datatype BYTES"},
      {image_input({{"shape", {1, 2}}}), "shape [N] or [N,1]"},
      {image_input({{"shape", {2}}}), "carries 1 element"},
      {image_input({{"data", {1}}}), "must be strings"},
      {image_input({{"name", "INPUT0"}}), "unknown input \"INPUT0\""},
      {image_input({{"parameters", {{"binary_data_size", 10}}}}), "only 0 bytes"},
      {json{{"inputs", {{{"name", "PIXELS"}, {"datatype", "UINT8"}, {"shape", {1, 2, 2}}, {"data", {1, 2, 3, 4}}}}}}.dump(),
       "[N,H,W,3]"},
      {json{{"inputs", {{{"name", "PIXELS"}, {"datatype", "UINT8"}, {"shape", {1, 1, 1, 3}}, {"data", {1, 2, 300}}}}}}.dump(),
       "[0, 255]"},
  };
  for (const auto& [body, expect] : cases) {
    const auto [status, message] = http_error_of([&] { parse_infer_request(body, std::nullopt); });
    EXPECT_EQ(status, 400) << body;
    EXPECT_NE(message.find(expect), std::string::npos) << body << " -> " << message;
  }
  const std::string huge = json{{"inputs", {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1}},
                                               {"data", {std::string(kMaxJsonBytes, 'x')}}}}}}.dump();
  EXPECT_NE(http_error_of([&] { parse_infer_request(huge, std::nullopt); }).second.find("binary data"),
            std::string::npos);
  const std::string ok = image_input(json::object());
  EXPECT_EQ(http_error_of([&] { parse_infer_request(ok, ok.size() + 1); }).first, 400);
  EXPECT_EQ(http_error_of([&] { parse_infer_request(ok + "xx", ok.size()); }).second.find("left over") != std::string::npos,
            true);
  json outputs = json::parse(ok);
  outputs["outputs"] = {{{"name", "LOGITS"}}};
  EXPECT_NE(http_error_of([&] { parse_infer_request(outputs.dump(), std::nullopt); }).second.find("unknown output"),
            std::string::npos);
}

TEST(ServeImages, PixelsTakeTheSamePathAsDecodedFiles) {
  // A PNG decoded by the server equals its pixels sent as PIXELS (resized by the same resize_to_square).
  const std::string file = tlc_test::source("data/fashion_mnist_sample/Bag/00018.png");
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(tlc::read_file_bytes(file, bytes, nullptr));
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  for (tlc::ResizeMode mode : {tlc::ResizeMode::stretch, tlc::ResizeMode::pad}) {
    tlc::DecodeOptions small;
    small.size = 20;
    small.resize = mode;
    tlc::DecodeOptions native = small;
    cv::Mat m = cv::imread(file, cv::IMREAD_COLOR);
    ASSERT_FALSE(m.empty());
    native.size = m.cols;  // Fashion-MNIST images are square: decoding at their own size resizes nothing
    const at::Tensor full = decode_images({view}, {"f"}, native);
    const at::Tensor via_pixels = resize_pixels(full, small);
    const at::Tensor via_file = decode_images({view}, {"f"}, small);
    EXPECT_TRUE(at::equal(via_pixels, via_file)) << tlc::to_string(mode);
  }
}

TEST(ServeImages, ABadImageIsA400NamingIt) {
  tlc::DecodeOptions opt;
  opt.size = 8;
  const auto [status, message] =
      http_error_of([&] { decode_images({std::string_view("not an image at all")}, {"IMAGE[0]"}, opt); });
  EXPECT_EQ(status, 400);
  EXPECT_NE(message.find("IMAGE[0]"), std::string::npos) << message;
}

TEST(ServeRunner, BatchesConcurrentRequestsAndAnswersEachWithItsOwnRows) {
  tlc_test::TempDir t;
  tlc::Preprocess pre;
  pre.image_size = 16;
  tlc::TrainOptions o;
  o.device = "cpu";
  tlc::TransferClassifier clf(tlc::Backbone::load(tlc_test::source("models/tiny_cnn.pt")), {"a", "b", "c"}, pre, o);
  clf.save(t.str("model.pt"));
  tlc::ModelFile reference = tlc::ModelFile::load(t.str("model.pt"));

  RunnerOptions ro;
  ro.max_batch = 4;
  ro.max_queue_delay = microseconds(20'000);
  ModelRunner runner("m", tlc::ModelFile::load(t.str("model.pt")), ro);
  runner.warm_up_and_start();
  ASSERT_TRUE(runner.ready());
  const at::Tensor pixels = at::randint(0, 256, {6, 16, 16, 3}, at::TensorOptions().dtype(at::kByte));
  const at::Tensor expected = reference.predict_proba(pixels);
  std::vector<std::future<JobResult>> results(6);
  std::vector<std::thread> clients;
  for (int64_t i = 0; i < 6; ++i)
    clients.emplace_back([&, i] {
      EXPECT_EQ(runner.submit(pixels.narrow(0, i, 1).clone(), Clock::time_point::max(), &results[i]),
                BatchQueue::Admit::ok);
    });
  for (auto& c : clients) c.join();
  for (int64_t i = 0; i < 6; ++i) {
    const JobResult r = results[i].get();
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_TRUE(at::allclose(r.probabilities, expected.narrow(0, i, 1), 1e-5, 1e-6)) << i;
  }
  EXPECT_EQ(runner.stats().inference_count.load(), 6u);
  EXPECT_LE(runner.stats().exec_count.load(), 6u);
  EXPECT_GE(runner.stats().exec_count.load(), 2u);  // at most 4 images per batch
  runner.drain();
  std::future<JobResult> after;
  EXPECT_EQ(runner.submit(pixels.narrow(0, 0, 1), Clock::time_point::max(), &after), BatchQueue::Admit::closed);
}
