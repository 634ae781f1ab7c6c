#pragma once
// Shared by the binding's files: how a long C++ call runs from Python (GIL released, Ctrl-C turned into a tlc
// interruption) and the registration functions of each file. The binding holds no logic of its own: it only
// converts between Python objects and the C++ API of include/tlc.
#include <torch/csrc/utils/pybind.h>

#include <utility>

namespace tlc::py {

namespace pyb = pybind11;

// While alive on Python's main thread: SIGINT calls tlc::request_interrupt() (async-signal-safe), so a
// long loop stops at its next check and throws tlc::Interrupted, which crosses as KeyboardInterrupt. Python's
// own handler cannot run while C++ holds the thread; it is put back afterwards. Off the main thread (e.g.
// joblib's threads) nothing is installed: signals go to the main thread anyway.
class SigintToInterrupt {
 public:
  SigintToInterrupt();
  ~SigintToInterrupt();
  SigintToInterrupt(const SigintToInterrupt&) = delete;
  SigintToInterrupt& operator=(const SigintToInterrupt&) = delete;

 private:
  bool installed_ = false;
  struct Saved;
  Saved* saved_ = nullptr;
};

// Runs fn() with the GIL released and Ctrl-C routed to tlc's interruption flag.
template <typename Fn>
auto long_call(Fn&& fn) {
  SigintToInterrupt sig;
  pyb::gil_scoped_release nogil;
  return std::forward<Fn>(fn)();
}

void bind_data(pyb::module_& m);
void bind_classifier(pyb::module_& m);

}  // namespace tlc::py
