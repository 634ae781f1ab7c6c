#include "tlc/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tlc/interrupt.h"

#ifndef TLC_BUILD_PYTHON
#define TLC_BUILD_PYTHON ""
#endif

extern char** environ;

namespace tlc {

std::string project_python() {
  if (const char* p = std::getenv("TLC_PYTHON"); p && *p) return p;
  const std::string built = TLC_BUILD_PYTHON;
  std::error_code ec;
  if (!built.empty() && std::filesystem::exists(built, ec)) return built;
  return "python3";
}

ChildResult run_child(const std::vector<std::string>& args, const std::vector<std::string>& env_extra, bool capture) {
  ChildResult r;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    const size_t n = eq ? static_cast<size_t>(eq - *e) + 1 : std::strlen(*e);
    bool replaced = false;
    for (const auto& x : env_extra) replaced = replaced || x.compare(0, n, *e, n) == 0;
    if (!replaced) env.emplace_back(*e);
  }
  env.insert(env.end(), env_extra.begin(), env_extra.end());
  std::vector<std::string> argv_s(args);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pipefd[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (capture) {
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
      r.start_error = std::strerror(errno);
      posix_spawn_file_actions_destroy(&fa);
      return r;
    }
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  }
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (capture) close(pipefd[1]);
  if (err != 0) {
    if (capture) close(pipefd[0]);
    r.start_error = std::strerror(err);
    return r;
  }
  r.started = true;
  bool forwarded = false, open = capture, waited = false;
  int status = 0;
  auto keep_tail = [&] {
    if (r.output.size() > 65536) r.output.erase(0, r.output.size() - 65536);
  };
  for (;;) {
    if (open) {
      pollfd p{pipefd[0], POLLIN, 0};
      if (poll(&p, 1, 20) > 0) {
        char buf[4096];
        const ssize_t k = read(pipefd[0], buf, sizeof buf);
        if (k > 0) {
          r.output.append(buf, static_cast<size_t>(k));
          keep_tail();
        } else if (k == 0 || errno != EINTR) {
          open = false;
        }
      }
    } else {
      usleep(20'000);
    }
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      waited = true;
      break;
    }
    if (w < 0 && errno != EINTR) {
      r.output += std::string("\n(waiting for the child failed: ") + std::strerror(errno) + ")";
      break;
    }
    if (interrupt_requested() && !forwarded) {
      kill(pid, SIGTERM);
      forwarded = true;
    }
  }
  if (capture) {
    // What it wrote just before it ended; without blocking, since a process it started may still hold the pipe.
    fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
    char buf[4096];
    ssize_t k;
    while ((k = read(pipefd[0], buf, sizeof buf)) > 0) {
      r.output.append(buf, static_cast<size_t>(k));
      keep_tail();
    }
    close(pipefd[0]);
  }
  if (!waited) return r;  // how it ended is unknown: exit_code stays -1, never read as success
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  else if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

std::string describe_child_end(const ChildResult& r) {
  if (!r.started) return "could not be started (" + r.start_error + ")";
  if (r.signal != 0) {
    const char* s = strsignal(r.signal);
    return "was killed by signal " + std::to_string(r.signal) + (s ? " (" + std::string(s) + ")" : std::string());
  }
  if (r.exit_code < 0) return "ended in a way tlc could not learn (waiting for it failed)";
  return "exited with code " + std::to_string(r.exit_code);
}

}  // namespace tlc
