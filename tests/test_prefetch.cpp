// The prefetch queue: order, bounded read-ahead, errors handed to the consumer at the right batch, and a
// clean stop when the consumer leaves early.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "tlc/error.h"
#include "tlc/prefetch.h"

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
