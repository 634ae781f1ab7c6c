// Exercises every collective tlc uses across the ranks the environment describes (ctest Dist.Collectives
// starts two): gloo's headers here are older than the gloo inside LibTorch, so each collective is checked,
// not only one. Prints "all collectives ok" or fails with the first mismatch.
#include <ATen/ATen.h>

#include <iostream>
#include <string>

#include "tlc/dist.h"

namespace {

int fail(const std::string& what) {
  std::cerr << "rank " << tlc::world().rank() << ": " << what << std::endl;
  return 1;
}

}  // namespace

int main() {
  try {
    tlc::join_world_from_environment("cpu", std::chrono::seconds(60));
    tlc::Comm& c = tlc::world();
    const int r = c.rank(), w = c.world_size();
    if (w < 2 || c.backend() != "gloo") return fail("expected at least 2 ranks on gloo, got " + std::to_string(w));
    // all-reduce (float32 and float64, several shapes)
    at::Tensor f = at::full({3, 2}, static_cast<float>(r + 1));
    c.allreduce_sum(f);
    if (!at::allclose(f, at::full({3, 2}, w * (w + 1) / 2.0f))) return fail("allreduce float");
    at::Tensor d = at::tensor({0.5 * r, 1.0}, at::kDouble);
    c.allreduce_sum(d);
    if (d[1].item<double>() != w || d[0].item<double>() != 0.5 * w * (w - 1) / 2) return fail("allreduce double");
    // broadcast from a non-zero root
    at::Tensor b = at::full({4}, static_cast<float>(r));
    c.broadcast(b, w - 1);
    if (!at::equal(b, at::full({4}, static_cast<float>(w - 1)))) return fail("broadcast");
    // all-gather of rows of different counts (rank r gives r+1 rows, rank 0 none when w > 2 is not needed)
    at::Tensor mine = at::full({r == 0 ? 0 : r + 1, 3}, static_cast<float>(r));
    at::Tensor all = c.allgather_rows(mine);
    int64_t rows = 0;
    for (int k = 0; k < w; ++k) rows += k == 0 ? 0 : k + 1;
    if (all.size(0) != rows || all.size(1) != 3) return fail("allgather_rows shape");
    for (int k = 1, at_row = 0; k < w; at_row += k + 1, ++k)
      if (!at::equal(all.slice(0, at_row, at_row + k + 1), at::full({k + 1, 3}, static_cast<float>(k))))
        return fail("allgather_rows values");
    // all-gather of strings (one empty)
    const std::string s = r == 0 ? "" : std::string(static_cast<size_t>(r * 3), static_cast<char>('a' + r));
    auto strings = c.allgather_bytes(s);
    for (int k = 0; k < w; ++k)
      if (strings[k] != (k == 0 ? "" : std::string(static_cast<size_t>(k * 3), static_cast<char>('a' + k))))
        return fail("allgather_bytes");
    // barrier and agreement
    c.barrier();
    if (!c.all_true(true) || c.all_true(r != w - 1)) return fail("all_true");
    std::cout << "rank " << r << ": all collectives ok (" << c.seconds_in_collectives() << " s in collectives)" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
