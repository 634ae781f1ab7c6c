// The device unit: device names and the GPU out-of-memory message (from PyTorch's own text, so testable here).
#include "test_util.h"
#include "tlc/device.h"
#include "tlc/error.h"

TEST(Device, ResolvesNamesAndRejectsUnknownOnes) {
  EXPECT_TRUE(tlc::resolve_device("cpu").is_cpu());
  EXPECT_THROW(tlc::resolve_device("tpu"), tlc::Error);
}

TEST(Device, OutOfMemoryMessageSaysWhatWasAskedWhatWasFreeWhoHoldsItAndTheWayOut) {
  // PyTorch 2.11's text (CUDACachingAllocator), with another job holding most of the card.
  const std::string torch_text =
      "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 139.81 GiB of which 3.19 GiB "
      "is free. Process 4242 has 120.00 GiB memory in use. Including non-PyTorch memory, this process has 16.50 GiB "
      "memory in use. Of the allocated memory 15.90 GiB is allocated by PyTorch, and 102.00 MiB is reserved by "
      "PyTorch but unallocated.";
  const std::string m = tlc::describe_gpu_oom(torch_text);
  EXPECT_NE(m.find("it asked for 20.00 GiB more"), std::string::npos) << m;
  EXPECT_NE(m.find("GPU 0 has 3.19 GiB free of 139.81 GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("process 4242 holds 120.00 GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("tlc holds 16.50 GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("--batch-size"), std::string::npos) << m;
  // Sizes below a KiB are written in bytes.
  const std::string full = tlc::describe_gpu_oom(
      "CUDA out of memory. Tried to allocate 2.00 MiB. GPU 0 has a total capacity of 79.10 GiB of which 0 bytes is free.");
  EXPECT_NE(full.find("GPU 0 has 0 bytes free of 79.10 GiB"), std::string::npos) << full;
  // A text without those sentences gives the way out alone, no invented figures.
  const std::string bare = tlc::describe_gpu_oom("CUDA out of memory.");
  EXPECT_EQ(bare.rfind("out of GPU memory. Use a smaller --batch-size", 0), 0u) << bare;
  EXPECT_NE(bare.find("--batch-size"), std::string::npos) << bare;
}
