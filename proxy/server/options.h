#pragma once
// Command line (DESIGN section 4).

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/common/result.h"

namespace levee::server {

struct Options {
  enum class Command { Run, Validate, Version, Help, Await };
  Command command{Command::Run};
  std::string config_path;
  uint32_t concurrency{0};  // 0: number of CPUs
  std::string log_level{"info"};
  // levee await
  std::string await_address{"127.0.0.1:15021"};  // the probes listener
  uint32_t await_timeout_ms{60000};
};

// Parses argv. Errors are usage errors (exit 2).
Result<Options> parseOptions(const std::vector<std::string>& args);
std::string usage();

}  // namespace levee::server
