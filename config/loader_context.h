#pragma once
// Internal to config/: the error collector and typed readers shared by the loader's sections
// (loader.cc, loader_listeners.cc, loader_upstreams.cc, loader_resilience.cc,
// loader_routes_resilience.cc). Not part of the public API.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/loader.h"
#include "config/policy.h"
#include "config/yaml_reader.h"

namespace levee::config::detail {

// One place for the DESIGN section 5 features this build parses but does not implement yet.
// Each is rejected with `"<key>" is not supported yet by this build`, never silently ignored.
// Delete an entry (and teach the loader the key) when the feature lands.
// `value` empty: the key itself is unsupported; otherwise only that value of the key is.
struct NotSupportedYet {
  std::string_view section;  // "policy", "listener", "route", "upstream", "metrics", "probes"
  std::string_view key;
  std::string_view value;
};
std::span<const NotSupportedYet> notSupportedYet();

// "did you mean" candidate: the closest of `candidates` within edit distance 2, or empty.
std::string closestMatch(std::string_view word, std::span<const std::string_view> candidates);

std::string childPath(std::string_view parent, std::string_view key);  // "a.b" (or "b")
std::string indexPath(std::string_view parent, size_t index);          // "a[3]"
std::string quoteText(std::string_view s);                             // "\"s\""
bool isToken(std::string_view s);
bool isMetricLabelSafe(std::string_view s);  // [a-zA-Z0-9_.-]+ (service, member names)  // RFC 9110 token (method names, header and cookie names)
std::string toLower(std::string_view s);
std::string toUpper(std::string_view s);

// Where a name must resolve to an upstream, of a given protocol when `required` is set (checked
// after all sections).
struct UpstreamReference {
  std::string name;
  std::optional<UpstreamProtocol> required;  // nullopt: any protocol (probes.ready_requires)
  std::string used_by;  // "route", "tcp listener": for the message
  int line{0};
  int column{0};
  std::string path;
};

// An address something binds (admin, probes, listeners): checked for conflicts after all sections.
struct BoundAddress {
  SocketAddress address;
  std::string owner;  // "admin", "probes", "listener \"inbound\"": for the message
  int line{0};
  int column{0};
  std::string path;
};

class LoadContext {
public:
  explicit LoadContext(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  void error(int line, int column, std::string path, std::string message);
  void error(const Node& at, std::string path, std::string message) {
    error(at.line, at.column, std::move(path), std::move(message));
  }
  // Cross-validation errors: reported after every schema error.
  void crossError(int line, int column, std::string path, std::string message);

  void addReference(UpstreamReference ref) { references_.push_back(std::move(ref)); }
  const std::vector<UpstreamReference>& references() const { return references_; }
  void addBoundAddress(BoundAddress bound) { bound_addresses_.push_back(std::move(bound)); }
  const std::vector<BoundAddress>& boundAddresses() const { return bound_addresses_; }

  // Schema errors, then cross-validation errors, each group in document order.
  Errors takeErrors();

private:
  std::string file_;
  Errors schema_errors_;
  Errors cross_errors_;
  std::vector<UpstreamReference> references_;
  std::vector<BoundAddress> bound_addresses_;
};

// The value of `key` in a mapping node (first occurrence), or nullptr.
const Node* findValue(const Node& map, std::string_view key);

// Value readers. Each returns false and records an error (at the node, with `path`) when the
// node does not hold a valid value of the type; `out` is left unchanged then.
bool readString(LoadContext& ctx, const Node& node, const std::string& path, std::string& out);
bool readBool(LoadContext& ctx, const Node& node, const std::string& path, bool& out);
bool readUint(LoadContext& ctx, const Node& node, const std::string& path, uint64_t min,
              uint64_t max, uint64_t& out);
bool readNumber(LoadContext& ctx, const Node& node, const std::string& path, double& out);
bool readDuration(LoadContext& ctx, const Node& node, const std::string& path, Duration& out);
bool readByteSize(LoadContext& ctx, const Node& node, const std::string& path, uint64_t max,
                  uint64_t& out);
bool readAddress(LoadContext& ctx, const Node& node, const std::string& path, bool allow_dns_name,
                 SocketAddress& out);
// Checks the node is a sequence; records "expected a sequence" otherwise.
bool expectSequence(LoadContext& ctx, const Node& node, const std::string& path);

// A mapping with a fixed set of keys. The constructor reports a non-mapping node, unknown keys
// (with a did-you-mean hint), keys in the not-supported-yet table for `section`, and duplicates.
class MapReader {
public:
  MapReader(LoadContext& ctx, const Node& node, std::string path, std::string_view section,
            std::initializer_list<std::string_view> allowed);

  bool ok() const { return ok_; }  // the node is a mapping
  const Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  std::string path(std::string_view key) const { return childPath(path_, key); }

  // The value of `key`, or nullptr. The first occurrence wins when a key is repeated.
  const Node* find(std::string_view key) const;
  // Like find(), and records `missing required key "key"` when absent.
  const Node* require(std::string_view key) const;

  // Typed shortcuts: absent keys leave `out` unchanged and return false without an error.
  bool string(std::string_view key, std::string& out) const;
  bool boolean(std::string_view key, bool& out) const;
  bool duration(std::string_view key, Duration& out) const;
  bool uint32(std::string_view key, uint32_t min, uint32_t max, uint32_t& out) const;
  bool byteSize(std::string_view key, uint64_t max, uint64_t& out) const;
  bool address(std::string_view key, bool allow_dns_name, SocketAddress& out) const;

  // One of `choices` (value -> enum). A value listed in the not-supported-yet table for this
  // section and key gets that error instead of "expected one of".
  template <typename E>
  bool choice(std::string_view key, std::initializer_list<std::pair<std::string_view, E>> choices,
              E& out) const {
    const Node* value = find(key);
    if (value == nullptr) {
      return false;
    }
    std::vector<std::string_view> names;
    for (const auto& [name, e] : choices) {
      names.push_back(name);
    }
    const int index = choiceIndex(key, *value, names);
    if (index < 0) {
      return false;
    }
    out = std::data(choices)[index].second;
    return true;
  }

private:
  int choiceIndex(std::string_view key, const Node& value,
                  const std::vector<std::string_view>& names) const;

  LoadContext& ctx_;
  const Node& node_;
  std::string path_;
  std::string_view section_;
  bool ok_{false};
};

// Helpers shared by the resilience blocks (defined in loader_resilience.cc).

// "30s", "5m", "1500ms": durations as shown in messages.
std::string durationText(Duration d);
// Reads `key` when present; it must be greater than zero. False only when present and invalid.
bool positiveDuration(LoadContext& ctx, const MapReader& m, std::string_view key, Duration& out);
// Reads `key` when present. False only when present and invalid.
bool optionalUint(const MapReader& m, std::string_view key, uint32_t min, uint32_t max,
                  uint32_t& out);

// One side of a relation between two keys of the same mapping.
struct Operand {
  std::string_view key;
  std::string text;  // the value as shown in the message
  const Node* node;  // where it is written; nullptr: it has its default value
};
Operand durationOperand(const MapReader& m, std::string_view key, Duration value);
// Reports that `subject` breaks "`subject` <relation> `other`": at subject when it is written,
// else at other, with `inverse` (the same relation seen from other) and a hint.
void reportRelation(LoadContext& ctx, const MapReader& m, const Operand& subject,
                    std::string_view relation, const Operand& other, std::string_view inverse);
// A sequence of distinct HTTP status codes in [min, max] (health_check.expected_statuses,
// retry.statuses). An empty sequence is an error ("leave the key out for the default").
void parseStatusList(LoadContext& ctx, const Node& node, const std::string& path, uint64_t min,
                     uint64_t max, std::vector<int>& out);

// Sections (loader_listeners.cc, loader_upstreams.cc).
void parseListeners(LoadContext& ctx, const Node& node, const std::string& path,
                    std::vector<Listener>& out);
void parseUpstreams(LoadContext& ctx, const Node& node, const std::string& path,
                    std::map<std::string, Upstream>& out);

// The companion section and `endpoints_from` (loader_companion.cc). crossValidateCompanion
// reports `endpoints_from` without a companion.failover.postgres section.
void parseCompanion(LoadContext& ctx, const Node& node, CompanionConfig& out);
// `companion.backup` (loader_companion_backup.cc).
void parseBackup(LoadContext& ctx, const Node& node, const std::string& path, BackupConfig& out);
void parseEndpointsFrom(LoadContext& ctx, const Node& node, const std::string& path,
                        EndpointsFrom& out);
void crossValidateCompanion(LoadContext& ctx, const Node& root, const Policy& policy);
// host/hostaddr and port of a libpq keyword/value DSN, which must name one TCP address (an IP
// literal). Returns the reason when it does not.
std::optional<std::string> dsnTcpAddress(std::string_view dsn, SocketAddress& out);

// The resilience blocks of one upstream (loader_resilience.cc). Each parses `node` (the value of
// the key) into `out`; the caller has already checked that the block applies to the upstream.
void parseHashOn(LoadContext& ctx, const Node& node, const std::string& path, HashOn& out);
void parseCircuitBreaker(LoadContext& ctx, const Node& node, const std::string& path,
                         CircuitBreakerConfig& out);
void parseOutlierDetection(LoadContext& ctx, const Node& node, const std::string& path,
                           OutlierDetectionConfig& out);
void parseHealthCheck(LoadContext& ctx, const Node& node, const std::string& path,
                      HealthCheckConfig& out);
void parseFailover(LoadContext& ctx, const Node& node, const std::string& path,
                   FailoverConfig& out);


// The request resilience blocks of one route (loader_routes_resilience.cc). The route's own
// checks (per_try_timeout against the route timeout) are done by the caller.
void parseRetry(LoadContext& ctx, const Node& node, const std::string& path, RetryConfig& out);
void parseRateLimit(LoadContext& ctx, const Node& node, const std::string& path,
                    RateLimitConfig& out);
// `degradation` (loader_degradation.cc). Reads `maintenance.body_file` now, relative to the
// policy file's directory.
void parseDegradation(LoadContext& ctx, const Node& node, DegradationConfig& out);
// Reads a file named in the policy (relative paths: against the policy file's directory), at
// most `max_bytes`. False with an error at `at` when it cannot.
bool readPolicyFile(LoadContext& ctx, const Node& at, const std::string& path, const std::string& file,
                    uint64_t max_bytes, std::string& out);
// `fallback` (loader_fallback.cc); `route_upstream` is the route's own upstream (a chain entry
// naming it would loop). Reads `static.body_file` now, relative to the policy file's directory.
void parseFallback(LoadContext& ctx, const Node& node, const std::string& path,
                   const std::string& route_upstream, FallbackConfig& out);

// metrics.slo (loader_slo.cc).
void parseSlo(LoadContext& ctx, const Node& node, const std::string& path, SloConfig& out);
// Route `fault` and top-level `faults` (loader_fault.cc).
void parseFault(LoadContext& ctx, const Node& node, const std::string& path, FaultConfig& out);
void parseFaults(LoadContext& ctx, const Node& node, FaultsConfig& out);

// A list of HTTP method tokens, stored upper-case, each once. An empty list is an error whose
// message ends with `empty_hint` (what leaving the key out means).
void parseMethodList(LoadContext& ctx, const Node& node, const std::string& path,
                     std::vector<std::string>& out, std::string_view empty_hint);

}  // namespace levee::config::detail
