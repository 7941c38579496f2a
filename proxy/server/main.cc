// levee entry point: CLI dispatch (DESIGN section 4).

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "proxy/common/logger.h"
#include "proxy/server/await.h"
#include "proxy/server/options.h"
#include "proxy/server/server.h"
#include "proxy/server/version.h"

int main(int argc, char** argv) {
  using levee::server::Options;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opts = levee::server::parseOptions(args);
  if (!opts) {
    std::cerr << "levee: " << opts.error().message << "\n" << levee::server::usage();
    return 2;
  }
  switch (opts->command) {
    case Options::Command::Help:
      std::cout << levee::server::usage();
      return 0;
    case Options::Command::Version:
      std::cout << "levee " << levee::server::kVersion << "\n";
      return 0;
    case Options::Command::Validate: {
      auto policy = levee::config::loadPolicyFile(opts->config_path);
      if (!policy) {
        std::cerr << levee::config::formatErrors(policy.error());
        return 1;
      }
      std::cout << "ok: " << opts->config_path << " (" << policy->listeners.size() << " listener(s), "
                << policy->upstreams.size() << " upstream(s))\n";
      return 0;
    }
    case Options::Command::Await:
      return levee::server::awaitReady(opts->await_address, opts->await_timeout_ms, std::cout, std::cerr);
    case Options::Command::Run:
      break;
  }
  levee::log::initLogging(opts->log_level);
  // Writes to a peer that closed must surface as EPIPE errors, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  auto policy = levee::config::loadPolicyFile(opts->config_path);
  if (!policy) {
    std::string errors = levee::config::formatErrors(policy.error());
    std::cerr << errors;
    LEVEE_LOG(Main, err, "invalid policy {}; not starting", opts->config_path);
    spdlog::shutdown();
    return 1;
  }
  int rc = 0;
  {
    levee::server::Server server(*opts, std::move(*policy));
    rc = server.run();
  }
  spdlog::shutdown();
  return rc;
}
