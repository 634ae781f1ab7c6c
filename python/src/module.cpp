// tlc._core: the extension module. Errors: tlc::Interrupted -> KeyboardInterrupt (after clearing the flag, so
// the next call runs), tlc::Error -> RuntimeError with the C++ message (the Python layer turns the ones it can
// classify into FileNotFoundError / ValueError).
#include <signal.h>

#include <exception>

#include "binding.h"
#include "tlc/augment.h"
#include "tlc/backbone.h"
#include "tlc/engine.h"
#include "tlc/error.h"
#include "tlc/image_io.h"
#include "tlc/interrupt.h"

namespace tlc::py {

namespace {
extern "C" void on_sigint(int) { tlc::request_interrupt(); }
}  // namespace

struct SigintToInterrupt::Saved {
  struct sigaction old {};
};

SigintToInterrupt::SigintToInterrupt() {
  auto threading = pyb::module_::import("threading");
  if (!threading.attr("current_thread")().is(threading.attr("main_thread")())) return;
  saved_ = new Saved;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  installed_ = sigaction(SIGINT, &sa, &saved_->old) == 0;
}

SigintToInterrupt::~SigintToInterrupt() {
  if (installed_) sigaction(SIGINT, &saved_->old, nullptr);
  delete saved_;
  // A Ctrl-C that came after the job's last check: the job finished, the interruption still belongs to the
  // user, so it reaches Python as a KeyboardInterrupt at its next check instead of stopping the next job.
  if (installed_ && std::uncaught_exceptions() == 0 && tlc::interrupt_requested()) {
    tlc::clear_interrupt();
    PyErr_SetInterrupt();
  }
}

}  // namespace tlc::py

PYBIND11_MODULE(_core, m) {
  namespace py = tlc::py;
  m.doc() = "tlc's C++ library (tlc_core) for Python; use the package tlc, not this module";
  m.attr("__version__") = TLC_VERSION;
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tlc::Interrupted& e) {
      tlc::clear_interrupt();
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    } catch (const tlc::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  m.def("request_interrupt", &tlc::request_interrupt, "Asks the running tlc job to stop at its next check");
  m.def("clear_interrupt", &tlc::clear_interrupt);
  m.def("interrupt_requested", &tlc::interrupt_requested);
  m.def("gif_supported", &tlc::gif_supported);
  m.def("canonical_augment", [](const std::string& s) { return tlc::to_string(tlc::parse_augment(s)); },
        "The canonical text of an augmentation (tlc train --augment's syntax); tlc.Error for a bad one");
  m.def("openvino_version", &tlc::openvino_version, "OpenVINO's release when this build has its engine, else ''");
  m.def("clear_backbone_cache", &tlc::Backbone::clear_load_cache,
        "Empties the loaded backbones kept for the next classifier (tlc::Backbone::load_cached); returns how many");
  py::bind_data(m);
  py::bind_classifier(m);
}
