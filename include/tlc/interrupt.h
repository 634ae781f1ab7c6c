#pragma once
// Interruption of long jobs (SIGINT/SIGTERM in the CLI): the job stops at the next check, writes its
// checkpoint, and throws Interrupted. Every loop that can take minutes (decoding, the first pass, feature and
// prefix caching, training steps, scoring) checks the flag once per batch.
#include <string>

#include "tlc/error.h"

namespace tlc {

// Thrown when a job stopped because interrupt_requested() became true; the checkpoint, if any, was written
// first. The run functions (run_training, run_finetune) add how to continue to the message.
class Interrupted : public Error {
 public:
  using Error::Error;
};

// Async-signal-safe: set from a signal handler.
void request_interrupt();
bool interrupt_requested();
// Clears the flag (for library users that run several jobs in one process, and for tests).
void clear_interrupt();

// Throws Interrupted("interrupted while <what>") when an interruption was requested. Test hook:
// TLC_INTERRUPT_IN=<prefix> requests the interruption at the first check whose `what` starts with <prefix>
// (e.g. "caching", "the first pass", "scoring", "decoding"), so that tests can stop every loop at will.
void check_interrupt(const std::string& what);

// Marks a checkpoint write in progress (RAII). A signal handler that would otherwise end the process at
// once (a second Ctrl-C) leaves it running while critical_write_in_progress() is true: the job then stops
// right after the write with the checkpoint complete. Async-signal-safe to read.
bool critical_write_in_progress();
class CriticalWrite {
 public:
  CriticalWrite();
  ~CriticalWrite();
  CriticalWrite(const CriticalWrite&) = delete;
  CriticalWrite& operator=(const CriticalWrite&) = delete;
};

}  // namespace tlc
