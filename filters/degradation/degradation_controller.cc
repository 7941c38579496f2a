#include "filters/degradation/degradation_controller.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/units.h"
#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"
#include "proxy/common/logger.h"
#include "proxy/event/fs_watch.h"

namespace levee::filters::degradation {
namespace {

constexpr size_t kMaxReason = 256;
constexpr std::chrono::hours kMaxTtl{24 * 7};
constexpr size_t kMaxStateFile = 64 * 1024;

int64_t unixMs(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime fromUnixMs(int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

// Writes `content` to `path` atomically: a temp file beside it, fsync, rename, fsync of the
// directory. Runs on the thread pool. Returns an error message, or empty.
std::string writeAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return "open " + tmp + ": " + std::strerror(errno);
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      std::string e = "write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      return e;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string e = "fsync " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return "rename " + tmp + " -> " + path + ": " + std::strerror(errno);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

// An operator level as JSON, or null.
template <typename Op>
void writeOptional(json::Writer& w, const std::optional<Op>& op) {
  if (!op) {
    w.null();
    return;
  }
  w.beginObject().key("level").value(op->level).key("reason").value(op->reason);
  w.key("set_at_ms").value(unixMs(op->set_at)).key("expires_at_ms");
  if (op->expires_at) {
    w.value(unixMs(*op->expires_at));
  } else {
    w.null();
  }
  w.key("source").value(op->source).endObject();
}

// An operator level from the state file's JSON object; nullopt when malformed.
template <typename Op>
std::optional<Op> readOperator(const json::Value& v) {
  const json::Object* o = v.object();
  if (o == nullptr) {
    return std::nullopt;
  }
  auto num = [&](std::string_view k) -> const double* {
    auto it = o->find(k);
    return it == o->end() ? nullptr : it->second.number();
  };
  const double* level = num("level");
  const double* set_at = num("set_at_ms");
  if (level == nullptr || *level < 0 || *level > kMaxLevel || std::floor(*level) != *level ||
      set_at == nullptr) {
    return std::nullopt;
  }
  Op op;
  op.level = static_cast<uint32_t>(*level);
  op.set_at = fromUnixMs(static_cast<int64_t>(*set_at));
  if (const double* exp = num("expires_at_ms")) {
    op.expires_at = fromUnixMs(static_cast<int64_t>(*exp));
  }
  if (auto it = o->find("reason"); it != o->end() && it->second.string() != nullptr) {
    op.reason = *it->second.string();
  }
  op.source = "state_file";
  return op;
}

}  // namespace

DegradationController::DegradationController(event::Dispatcher& main, DegradationState& state,
                                             const TimeSource& time)
    : main_(main), state_(state), time_(time), alive_(std::make_shared<bool>(true)) {}

DegradationController::~DegradationController() = default;

void DegradationController::configure(const config::DegradationConfig& config) {
  config_ = config;
  const config::DegradationAutoConfig& a = config_.automatic;
  state_.setRecording(a.enabled && a.burn_rate > 0);
  if (!a.enabled) {
    auto_level_ = 0;
    samples_.clear();
  } else {
    auto_level_ = std::min(auto_level_, a.max_level);
  }
  apply("policy");
}

void DegradationController::apply(std::string_view why) {
  const uint32_t next = operator_ ? operator_->level : std::max(config_.level, auto_level_);
  if (next != effective_) {
    LEVEE_LOG(Admin, warn, "degradation level {} ({}) -> {} ({}): {}", effective_, levelName(effective_), next,
              levelName(next), why);
  }
  effective_ = next;
  state_.setLevel(next);
}

void DegradationController::restoreFromStateFile() {
  if (config_.state_file.empty()) {
    return;
  }
  std::error_code ec;
  if (!std::filesystem::exists(config_.state_file, ec)) {
    return;
  }
  const auto size = std::filesystem::file_size(config_.state_file, ec);
  if (ec || size > kMaxStateFile) {
    LEVEE_LOG(Admin, warn, "degradation state file {} ignored: {}", config_.state_file,
              ec ? ec.message() : "larger than 64 KiB");
    return;
  }
  std::ifstream in(config_.state_file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto doc = json::parse(text);
  const json::Object* o = doc ? doc->object() : nullptr;
  if (o == nullptr) {
    LEVEE_LOG(Admin, warn, "degradation state file {} ignored: {}", config_.state_file,
              doc ? std::string("not a JSON object") : doc.error().message);
    return;
  }
  std::optional<OperatorLevel> op;
  std::optional<OperatorLevel> prev;
  if (auto it = o->find("operator"); it != o->end() && !it->second.isNull()) {
    op = readOperator<OperatorLevel>(it->second);
    if (!op) {
      LEVEE_LOG(Admin, warn, "degradation state file {} ignored: malformed \"operator\"", config_.state_file);
      return;
    }
  }
  if (auto it = o->find("previous"); it != o->end() && !it->second.isNull()) {
    prev = readOperator<OperatorLevel>(it->second);
  }
  const SystemTime now = time_.systemTime();
  if (op && op->expires_at && *op->expires_at <= now) {
    op = prev;  // its TTL ended while levee was down
    prev.reset();
    if (op && op->expires_at && *op->expires_at <= now) {
      op.reset();
    }
  }
  operator_ = op;
  previous_ = prev;
  apply("restored from " + config_.state_file);
}

std::string DegradationController::stateJson() const {
  std::string out;
  json::Writer w(out);
  w.beginObject().key("version").value(1).key("operator");
  writeOptional(w, operator_);
  w.key("previous");
  writeOptional(w, previous_);
  w.endObject();
  return out;
}

std::string DegradationController::json() const {
  std::string out;
  json::Writer w(out);
  w.beginObject().key("level").value(effective_).key("name").value(levelName(effective_));
  w.key("source").value(operator_ ? "operator" : (auto_level_ > config_.level ? "auto" : "policy"));
  w.key("operator");
  writeOptional(w, operator_);
  w.key("previous_level");
  if (previous_) {
    w.value(previous_->level);
  } else if (operator_ && operator_->expires_at) {
    w.value(std::max(config_.level, auto_level_));
  } else {
    w.null();
  }
  w.key("policy_level").value(config_.level);
  w.key("auto").beginObject().key("enabled").value(config_.automatic.enabled);
  w.key("level").value(auto_level_).key("max_level").value(config_.automatic.max_level);
  w.key("burn_rate").value(last_burn_rate_).endObject();
  w.key("state_file").value(config_.state_file).endObject();
  return out;
}

int DegradationController::put(std::string_view body, std::string& out, std::string& audit) {
  auto fail = [&](std::string message) {
    out.clear();
    json::Writer(out).beginObject().key("error").value(message).endObject();
    return 400;
  };
  auto doc = json::parse(body);
  if (!doc) {
    return fail(doc.error().message);
  }
  const json::Object* o = doc->object();
  if (o == nullptr) {
    return fail("expected a JSON object like {\"level\":2,\"reason\":\"db incident\",\"ttl\":\"30m\"}, got " +
                std::string(json::typeName(*doc)));
  }
  for (const auto& [k, v] : *o) {
    if (k != "level" && k != "reason" && k != "ttl") {
      return fail("unknown key \"" + k + "\" (expected level, reason, ttl)");
    }
  }
  auto lit = o->find("level");
  const double* level = lit == o->end() ? nullptr : lit->second.number();
  if (lit == o->end()) {
    return fail("missing \"level\" (0 normal, 1 shed noncore, 2 read-only, 3 cached/static, 4 maintenance)");
  }
  if (level == nullptr || *level < 0 || *level > kMaxLevel || std::floor(*level) != *level) {
    return fail("\"level\" must be an integer 0..4");
  }
  std::string reason;
  if (auto it = o->find("reason"); it != o->end()) {
    if (it->second.string() == nullptr) {
      return fail("\"reason\" must be a string");
    }
    reason = *it->second.string();
    if (reason.size() > kMaxReason) {
      return fail("\"reason\" is longer than 256 bytes");
    }
  }
  std::optional<std::chrono::milliseconds> ttl;
  if (auto it = o->find("ttl"); it != o->end() && !it->second.isNull()) {
    if (it->second.string() == nullptr) {
      return fail("\"ttl\" must be a duration string like \"30m\"");
    }
    auto d = config::parseDuration(*it->second.string());
    if (!d) {
      return fail("\"ttl\": " + d.error().message);
    }
    if (d->count() <= 0 || *d > kMaxTtl) {
      return fail("\"ttl\" must be greater than 0 and at most 168h");
    }
    ttl = *d;
  }
  const uint32_t before = effective_;
  const SystemTime now = time_.systemTime();
  previous_ = ttl ? operator_ : std::nullopt;
  OperatorLevel op;
  op.level = static_cast<uint32_t>(*level);
  op.reason = reason;
  op.set_at = now;
  if (ttl) {
    op.expires_at = now + *ttl;
  }
  op.source = "admin";
  operator_ = op;
  apply("admin" + (reason.empty() ? std::string() : ": " + reason));
  persist();
  audit = "level " + std::to_string(before) + " -> " + std::to_string(effective_) +
          (reason.empty() ? "" : " (" + reason + ")") + (ttl ? ", ttl " + std::to_string(ttl->count()) + "ms" : "");
  out = json();
  return 200;
}

int DegradationController::clear(std::string& out, std::string& audit) {
  const uint32_t before = effective_;
  operator_.reset();
  previous_.reset();
  apply("admin cleared the operator level");
  persist();
  audit = "level " + std::to_string(before) + " -> " + std::to_string(effective_) + " (operator level cleared)";
  out = json();
  return 200;
}

void DegradationController::tick(double open_breaker_percent) {
  if (operator_ && operator_->expires_at && time_.systemTime() >= *operator_->expires_at) {
    operator_ = previous_;
    previous_.reset();
    if (operator_ && operator_->expires_at && time_.systemTime() >= *operator_->expires_at) {
      operator_.reset();
    }
    apply("ttl ended, the previous level returns");
    persist();
  }
  autoStep(open_breaker_percent);
}

void DegradationController::autoStep(double open_breaker_percent) {
  const config::DegradationAutoConfig& a = config_.automatic;
  if (!a.enabled) {
    return;
  }
  const MonotonicTime now = time_.monotonicTime();
  double burn = 0;
  if (a.burn_rate > 0) {
    samples_.push_back({now, state_.responses(), state_.errors()});
    // Keep the newest sample at or before the window's start as the baseline.
    while (samples_.size() > 2 && samples_[1].at <= now - a.window) {
      samples_.pop_front();
    }
    const Sample& first = samples_.front();
    const Sample& last = samples_.back();
    const uint64_t n = last.responses - first.responses;
    if (n >= a.minimum_requests) {
      const double ratio = static_cast<double>(last.errors - first.errors) / static_cast<double>(n);
      burn = ratio / (1.0 - a.availability / 100.0);
    }
  }
  last_burn_rate_ = burn;
  const double keep = 1.0 - a.hysteresis_percent / 100.0;
  const bool breaker_on = a.breaker_open_percent > 0;
  const bool burn_on = a.burn_rate > 0;
  const bool over = (breaker_on && open_breaker_percent >= a.breaker_open_percent) ||
                    (burn_on && burn >= a.burn_rate);
  const bool under = (!breaker_on || open_breaker_percent < a.breaker_open_percent * keep) &&
                     (!burn_on || burn < a.burn_rate * keep);
  const bool held = auto_level_ == 0 || now - auto_changed_ >= a.cooldown;
  if (over && auto_level_ < a.max_level && held) {
    ++auto_level_;
    auto_changed_ = now;
    apply("auto: open breakers " + std::to_string(static_cast<int>(open_breaker_percent)) + "%, burn rate " +
          std::to_string(burn));
  } else if (under && auto_level_ > 0 && held) {
    --auto_level_;
    auto_changed_ = now;
    apply("auto: triggers back below their thresholds");
  }
}

void DegradationController::persist() {
  if (config_.state_file.empty()) {
    return;
  }
  dirty_ = true;
  if (!writing_) {
    writeNext();
  }
}

void DegradationController::writeNext() {
  dirty_ = false;
  writing_ = true;
  auto result = std::make_shared<std::string>();
  std::weak_ptr<bool> alive = alive_;
  const bool queued = event::runOffLoop(
      main_,
      [path = config_.state_file, content = stateJson(), result] { *result = writeAtomically(path, content); },
      [this, alive, result, path = config_.state_file] {
        if (alive.expired()) {
          return;
        }
        if (!result->empty()) {
          LEVEE_LOG(Admin, err, "degradation state file {} not written: {}", path, *result);
        }
        writing_ = false;
        if (dirty_) {
          writeNext();
        }
      });
  if (!queued) {
    writing_ = false;
    LEVEE_LOG(Admin, err, "degradation state file {} not written: could not queue the write", config_.state_file);
  }
}

}  // namespace levee::filters::degradation
