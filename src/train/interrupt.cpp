#include "tlc/interrupt.h"

#include <atomic>
#include <cstdlib>

namespace tlc {
namespace {
std::atomic<bool> g_interrupt{false};
std::atomic<int> g_critical{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "read from a signal handler");
}  // namespace

void request_interrupt() { g_interrupt.store(true); }
bool interrupt_requested() { return g_interrupt.load(); }
void clear_interrupt() { g_interrupt.store(false); }

void check_interrupt(const std::string& what) {
  static const char* hook = std::getenv("TLC_INTERRUPT_IN");
  if (hook && *hook && what.compare(0, std::char_traits<char>::length(hook), hook) == 0) request_interrupt();
  if (interrupt_requested()) throw Interrupted("interrupted while " + what);
}

bool critical_write_in_progress() { return g_critical.load() > 0; }
CriticalWrite::CriticalWrite() { g_critical.fetch_add(1); }
CriticalWrite::~CriticalWrite() { g_critical.fetch_sub(1); }

}  // namespace tlc
