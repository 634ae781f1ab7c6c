// The prefetch queue: order, bounded read-ahead, errors handed to the consumer at the right batch, and a
// clean stop when the consumer leaves early.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "test_util.h"
#include "tlc/error.h"
#include "tlc/prefetch.h"

using namespace tlc_test;

namespace {
const c10::Device kCpu(c10::kCPU);
}

TEST(Prefetch, HandsOutEveryBatchInOrder) {
  std::atomic<int> calls{0};
  tlc::Prefetcher p(
      50,
      [&](int64_t k, bool pinned) {
        EXPECT_FALSE(pinned) << "no pinned memory for a CPU consumer";
        ++calls;
        return at::full({3, 2}, static_cast<double>(k));
      },
      kCpu, 3);
  for (int64_t k = 0; k < 50; ++k) {
    at::Tensor t = p.next();
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 2}));
    ASSERT_EQ(t[0][0].item<double>(), static_cast<double>(k));
  }
  EXPECT_EQ(calls.load(), 50);
  EXPECT_THROW(p.next(), tlc::Error);
}

TEST(Prefetch, ReadsAheadAtMostDepthBatches) {
  std::atomic<int64_t> made{0};
  tlc::Prefetcher p(
      20,
      [&](int64_t k, bool) {
        made = k + 1;
        return at::zeros({1});
      },
      kCpu, 2);
  for (int64_t taken = 0; taken < 20; ++taken) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the worker run ahead as far as it may
    // `depth` finished batches wait, and the worker may be making one more.
    EXPECT_LE(made.load(), taken + 2 + 1) << "after " << taken << " batches taken";
    p.next();
  }
}

TEST(Prefetch, AFailingBatchIsRethrownWhereItWouldHaveBeen) {
  tlc::Prefetcher p(
      10,
      [&](int64_t k, bool) {
        if (k == 3) throw tlc::Error("batch 3 is broken");
        return at::full({1}, static_cast<double>(k));
      },
      kCpu, 2);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(p.next().item<double>(), k);
  try {
    p.next();
    FAIL() << "expected the error of batch 3";
  } catch (const tlc::Error& e) {
    EXPECT_STREQ(e.what(), "batch 3 is broken");
  }
}

TEST(Prefetch, LeavingEarlyStopsTheWorker) {
  std::atomic<int64_t> made{0};
  {
    tlc::Prefetcher p(
        1000,
        [&](int64_t, bool) {
          ++made;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return at::zeros({1});
        },
        kCpu, 2);
    p.next();
  }  // the destructor must stop and join the worker, not make all 1000 batches
  EXPECT_LE(made.load(), 5);
}

TEST(Prefetch, NoBatchesIsFine) {
  tlc::Prefetcher p(0, [](int64_t, bool) { return at::zeros({1}); }, kCpu);
  EXPECT_EQ(p.count(), 0);
  EXPECT_THROW(p.next(), tlc::Error);
}

TEST(Prefetch, BatchesInOrderCoverEveryIndexOnce) {
  auto plan = tlc::batches_in_order(10, 4);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(plan[2], (std::vector<int64_t>{8, 9}));
  EXPECT_TRUE(tlc::batches_in_order(0, 4).empty());
}

TEST(Prefetch, FilesAreDecodedInOrderWithTheirStatus) {
  TempDir t;
  auto names = make_dataset(t.path(), 1, 3, 16);
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) paths.push_back(t.str(names[0] + "/img" + std::to_string(i) + ".png"));
  write_text(t.path() / "broken.jpg", "not a jpeg");
  paths.insert(paths.begin() + 1, t.str("broken.jpg"));
  tlc::DecodeOptions opt;
  opt.size = 16;
  std::vector<tlc::DecodeStatus> status;
  auto batches = tlc::prefetch_files(paths, 3, opt, 2, kCpu, status);
  ASSERT_EQ(batches->count(), 2);
  at::Tensor first = batches->next(), second = batches->next();
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{3, 16, 16, 3}));
  EXPECT_EQ(second.size(0), 1);
  EXPECT_TRUE(status[0].ok && status[2].ok && status[3].ok);
  EXPECT_FALSE(status[1].ok);
  EXPECT_FALSE(status[1].error.empty());
  std::vector<uint8_t> px(16 * 16 * 3);
  ASSERT_TRUE(tlc::load_resized(paths[3], px.data(), opt).ok);
  EXPECT_EQ(std::memcmp(second.data_ptr<uint8_t>(), px.data(), px.size()), 0);
}
