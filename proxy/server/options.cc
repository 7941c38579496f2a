#include "proxy/server/options.h"

#include <charconv>

#include "config/units.h"

namespace levee::server {

std::string usage() {
  return "usage:\n"
         "  levee run --config FILE [--concurrency N] [--log-level trace|debug|info|warn|error]\n"
         "  levee --config FILE [...]          (same as run)\n"
         "  levee validate FILE                 (exit 0, or 1 with every error as FILE:LINE:COL)\n"
         "  levee await [--address HOST:PORT] [--timeout DUR]\n"
         "                                      (wait until /health/ready answers 200; default\n"
         "                                      127.0.0.1:15021 for 60s; exit 0 ready, 1 timeout)\n"
         "  levee version\n";
}

namespace {

// The value of `--flag=value` or `--flag value` at args[i] (advances i for the second form).
Result<std::string> flagValue(const std::vector<std::string>& args, size_t& i, std::string_view flag) {
  const std::string& a = args[i];
  if (a.starts_with(std::string(flag) + "=")) {
    return a.substr(flag.size() + 1);
  }
  if (i + 1 >= args.size()) {
    return makeError(std::string(flag) + " needs a value");
  }
  return args[++i];
}

Result<Options> parseAwait(const std::vector<std::string>& args) {
  Options o;
  o.command = Options::Command::Await;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string_view flag) { return flagValue(args, i, flag); };
    if (a == "--address" || a.starts_with("--address=")) {
      LEVEE_ASSIGN_OR_RETURN(std::string v, value("--address"));
      auto addr = config::parseSocketAddress(v, /*allow_dns_name=*/false);
      if (!addr) {
        return makeError("--address: " + addr.error().message);
      }
      o.await_address = v;
    } else if (a == "--timeout" || a.starts_with("--timeout=")) {
      LEVEE_ASSIGN_OR_RETURN(std::string v, value("--timeout"));
      auto d = config::parseDuration(v);
      if (!d) {
        return makeError("--timeout: " + d.error().message);
      }
      if (d->count() <= 0 || d->count() > 24LL * 3600 * 1000) {
        return makeError("--timeout must be between 1ms and 24h");
      }
      o.await_timeout_ms = static_cast<uint32_t>(d->count());
    } else {
      return makeError("await: unknown option \"" + a + "\"");
    }
  }
  return o;
}

}  // namespace

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
    } else if (cmd == "await") {
      return parseAwait(args);
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
    auto value = [&](std::string_view flag) { return flagValue(args, i, flag); };
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
