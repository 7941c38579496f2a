#include "proxy/server/options.h"

#include <charconv>

namespace levee::server {

std::string usage() {
  return "usage:\n"
         "  levee run --config FILE [--concurrency N] [--log-level trace|debug|info|warn|error]\n"
         "  levee --config FILE [...]          (same as run)\n"
         "  levee validate FILE                 (exit 0, or 1 with every error as FILE:LINE:COL)\n"
         "  levee version\n";
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  Options o;
  size_t i = 0;
  if (!args.empty() && !args[0].starts_with("-")) {
    const std::string& cmd = args[0];
    if (cmd == "run") {
      o.command = Options::Command::Run;
    } else if (cmd == "validate") {
      o.command = Options::Command::Validate;
      if (args.size() != 2) {
        return makeError("validate takes exactly one FILE");
      }
      o.config_path = args[1];
      return o;
    } else if (cmd == "version") {
      o.command = Options::Command::Version;
      return o;
    } else if (cmd == "help") {
      o.command = Options::Command::Help;
      return o;
    } else {
      return makeError("unknown command \"" + cmd + "\"");
    }
    i = 1;
  }
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string_view flag) -> Result<std::string> {
      if (a.starts_with(std::string(flag) + "=")) {
        return a.substr(flag.size() + 1);
      }
      if (i + 1 >= args.size()) {
        return makeError(std::string(flag) + " needs a value");
      }
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      o.command = Options::Command::Help;
      return o;
    } else if (a.starts_with("--config")) {
      LEVEE_ASSIGN_OR_RETURN(o.config_path, value("--config"));
    } else if (a.starts_with("--concurrency")) {
      LEVEE_ASSIGN_OR_RETURN(std::string v, value("--concurrency"));
      uint32_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > 256) {
        return makeError("--concurrency must be an integer in [1, 256], got \"" + v + "\"");
      }
      o.concurrency = n;
    } else if (a.starts_with("--log-level")) {
      LEVEE_ASSIGN_OR_RETURN(o.log_level, value("--log-level"));
      static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
      bool ok = false;
      for (auto* l : kLevels) {
        ok = ok || o.log_level == l;
      }
      if (!ok) {
        return makeError("--log-level must be one of trace, debug, info, warn, error, critical, off");
      }
    } else {
      return makeError("unknown option \"" + a + "\"");
    }
  }
  if (o.config_path.empty()) {
    return makeError("--config FILE is required");
  }
  return o;
}

}  // namespace levee::server
