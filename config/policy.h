#pragma once
// The typed policy (DESIGN section 5). Plain data, produced by config::loadPolicy*, validated,
// then frozen into an immutable snapshot. Durations are milliseconds; zero means "off/none"
// unless a field says otherwise.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace levee::config {

using Duration = std::chrono::milliseconds;

// host:port. host may be an IPv4/IPv6 literal or a DNS name (upstream endpoints only).
struct SocketAddress {
  std::string host;
  uint16_t port{0};
  bool is_ip{false};  // host is a numeric literal (no DNS needed)
  std::string toString() const;
  // Field-wise: decides what state a reload may keep.
  bool operator==(const SocketAddress&) const = default;
};

struct AdminConfig {
  SocketAddress address{"127.0.0.1", 15000, true};
  std::string token_file;  // empty: every mutation is refused
};

struct ProbesConfig {
  SocketAddress address{"0.0.0.0", 15021, true};
  std::vector<std::string> ready_requires;  // upstreams that must have a healthy endpoint
};

enum class ListenerProtocol { Http, Tcp };
// Traffic direction (lifecycle, DESIGN section 10): inbound listeners drain on SIGTERM,
// outbound listeners (the app's egress) keep serving until the grace period ends.
enum class ListenerDirection { Inbound, Outbound };

struct HeaderMatch {
  std::string name;   // lower-cased
  std::string value;  // exact value
};

struct RouteMatch {
  enum class PathKind { Any, Exact, Prefix, Regex };
  PathKind path_kind{PathKind::Any};
  std::string path;                  // for Exact/Prefix/Regex (regex: ECMAScript, whole path)
  std::vector<std::string> methods;  // upper-case; empty: any
  std::vector<HeaderMatch> headers;  // all must match
  std::string host;                  // lower-case, without port; empty: any; "*.x.com" wildcard
};

enum class RouteTier { Core, NonCore };

// Route `retry` (DESIGN section 5; issue "request resilience").
struct RetryBudgetConfig {
  enum class Kind { None, Percent, Ratio };
  Kind kind{Kind::None};
  // Envoy's model: concurrent retries <= max(min_concurrency, percent% of active requests).
  uint32_t percent{20};
  uint32_t min_concurrency{3};
  // Linkerd/Finagle's model: each request deposits `ratio` tokens (kept for `ttl`), each retry
  // withdraws one; `min_per_second` retries are always allowed.
  double ratio{0.2};
  uint32_t min_per_second{10};
  Duration ttl{10000};
  // Field-wise: decides what state a reload may keep.
  bool operator==(const RetryBudgetConfig&) const = default;
};

struct RetryConfig {
  bool enabled{false};
  uint32_t max_retries{1};
  // `on`: connect-failure, reset, timeout (per try), 5xx, gateway-error (502/503/504),
  // retriable-status (with `statuses`).
  bool on_connect_failure{true};
  bool on_reset{false};
  bool on_timeout{false};
  bool on_5xx{false};
  bool on_gateway_error{false};
  bool on_retriable_status{false};
  std::vector<int> statuses;
  Duration per_try_timeout{0};              // 0: none (the route timeout still bounds all)
  Duration backoff_base{25};
  Duration backoff_max{250};
  std::vector<std::string> methods;         // empty: idempotent methods only
  RetryBudgetConfig budget;
  bool honor_retry_after{true};
  uint64_t max_body_bytes{64 * 1024};       // bigger request bodies are never retried
  // Field-wise: decides what state a reload may keep.
  bool operator==(const RetryConfig&) const = default;
};

// Route `rate_limit`.
struct RateLimitConfig {
  bool enabled{false};
  double rate_per_second{0};   // refill rate ("100/s", "6000/m")
  std::string rate_text;       // as written, for the RateLimit-Policy header
  uint32_t burst{0};           // bucket size
  enum class Key { ClientIp, Header, Route };
  Key key{Key::ClientIp};
  std::string header;          // for Key::Header (lower-case)
  bool shadow{false};          // mode: shadow -> admit all, count would-be denials
  uint32_t max_keys{100000};   // bounded per-key table (LRU)
  // Field-wise: decides what state a reload may keep.
  bool operator==(const RateLimitConfig&) const = default;
};

// Route `fallback` (DESIGN section 5; issue "request resilience"): what answers when the
// upstream path fails, tried in order.
enum class FallbackReason : uint32_t {
  BreakerOpen = 1u << 0,        // the upstream's circuit breaker is open
  NoHealthyUpstream = 1u << 1,  // no endpoint to send to (none resolved, all ejected/unhealthy)
  ConnectFailure = 1u << 2,     // every attempt failed to connect (refused, connect timeout)
  Reset = 1u << 3,              // the upstream reset the connection before the response
  Timeout = 1u << 4,            // route timeout or the last per-try timeout
  Upstream5xx = 1u << 5,        // the upstream answered 5xx (after retries)
  Overflow = 1u << 6,           // the upstream's connection/request limits were full
  RateLimited = 1u << 7,        // the route's rate limit refused the request
  Degraded = 1u << 8,           // a degradation level sheds or answers this request
};
inline constexpr uint32_t kFallbackReasonCount = 9;
// Index 0..8 of a reason (for per-reason tables) and its policy/metric name.
uint32_t fallbackReasonIndex(FallbackReason r);
std::string_view fallbackReasonName(FallbackReason r);

struct StaleFallbackConfig {
  Duration max_stale{600000};            // serve a stored response at most this old
  uint64_t max_bytes{16 * 1024 * 1024};  // the route's store: total bytes of stored responses
  uint32_t max_entries{10000};           // ... and number of stored responses
  uint64_t max_entry_bytes{1024 * 1024}; // bigger responses are not stored
  bool allow_authorized{false};          // store responses to requests with Authorization
  bool operator==(const StaleFallbackConfig&) const = default;
};

struct StaticFallbackConfig {
  int status{200};
  std::vector<std::pair<std::string, std::string>> headers;  // as written (name, value)
  std::string body;       // inline `body`, or the contents of `body_file` read at load time
  std::string body_file;  // as written (empty: inline body)
  bool operator==(const StaticFallbackConfig&) const = default;
};

struct FallbackEntry {
  enum class Kind { Stale, Static, Upstream };
  Kind kind{Kind::Static};
  StaleFallbackConfig stale;
  StaticFallbackConfig static_response;
  std::string upstream;  // Kind::Upstream: the upstream to try instead
  Duration timeout{0};   // Kind::Upstream: its deadline (0: the route timeout, or none)
  bool operator==(const FallbackEntry&) const = default;
};

struct FallbackConfig {
  bool enabled{false};
  // FallbackReason bits. Default: every reason except rate_limited.
  uint32_t on{0x1FF & ~static_cast<uint32_t>(FallbackReason::RateLimited)};
  std::vector<FallbackEntry> chain;
  bool wants(FallbackReason r) const { return enabled && (on & static_cast<uint32_t>(r)) != 0; }
  bool operator==(const FallbackConfig&) const = default;
};

// Route `fault` (DESIGN section 5), also the fault of a run-time experiment (/admin/faults).
// Each kind is off unless its block is present. Percentages are stored in parts per million
// (percent 12.5 -> 125000), so 0 never fires and 1'000'000 always does.
struct FaultConfig {
  bool enabled{false};
  uint32_t delay_ppm{0};
  Duration delay{0};
  uint32_t abort_ppm{0};
  int abort_status{0};
  uint32_t reset_ppm{0};  // close the downstream connection without a response
  // Field-wise: decides what state a reload may keep.
  bool operator==(const FaultConfig&) const = default;
};

// Top-level `faults`: limits of the run-time experiments (/admin/faults).
struct FaultsConfig {
  uint32_t max_active{10};       // experiments running at once; POST beyond -> 409
  Duration default_ttl{300000};  // an experiment without "ttl" expires after this (5m)
  Duration max_ttl{3600000};     // longest "ttl" accepted (1h)
};

struct Route {
  std::string name;
  RouteMatch match;
  std::string upstream;
  RouteTier tier{RouteTier::Core};
  Duration timeout{0};  // whole request; 0 = none
  RetryConfig retry;
  RateLimitConfig rate_limit;
  FallbackConfig fallback;
  FaultConfig fault;
};

// Per-listener HTTP limits (not in DESIGN's example; documented in docs/policy.md).
struct HttpLimits {
  uint32_t max_header_bytes{60 * 1024};  // request line + headers -> 431 above
  uint32_t max_headers{100};             // header count -> 431 above
  Duration header_timeout{10000};        // time to receive a complete request head -> 408
  uint64_t max_body_bytes{0};            // 0: unlimited; above -> 413
  Duration idle_timeout{300000};         // keep-alive idle downstream connection -> closed
};

struct Listener {
  std::string name;
  SocketAddress address;
  ListenerProtocol protocol{ListenerProtocol::Http};
  ListenerDirection direction{ListenerDirection::Inbound};
  HttpLimits limits;
  std::vector<Route> routes;  // http
  std::string upstream;       // tcp
  bool trust_forwarded{false};  // keep inbound X-Forwarded-* (else appended to)
};

enum class UpstreamProtocol { Http1, Http2, Tcp };
enum class LoadBalancerKind { RoundRobin, LeastRequest, Random, Hash };

// `hash_on` for load_balancer: hash (consistent hashing).
struct HashOn {
  enum class Kind { Path, Header, Cookie };
  Kind kind{Kind::Path};
  std::string name;  // header name (lower-case) or cookie name
  // Field-wise: decides what state a reload may keep.
  bool operator==(const HashOn&) const = default;
};

// What counts as a failure for the breaker (`failure_on`).
struct FailureOn {
  bool status_5xx{true};
  bool connect_failure{true};
  bool reset{true};
  bool timeout{true};
  std::vector<int> statuses;  // extra statuses listed as numbers (e.g. 429)
  // Field-wise: decides what state a reload may keep.
  bool operator==(const FailureOn&) const = default;
};

// Per upstream, shared by all workers (DESIGN section 5, issue "upstream resilience").
struct CircuitBreakerConfig {
  bool enabled{false};                 // present in the policy
  FailureOn failure_on;
  uint32_t consecutive_failures{0};    // 0: this trigger is off
  uint32_t failure_rate_threshold_percent{0};  // 0: off
  uint32_t failure_rate_minimum_requests{20};
  Duration failure_rate_window{10000};
  Duration slow_call_duration{0};      // 0: off
  uint32_t slow_call_threshold_percent{0};
  Duration open_for{30000};            // doubles on each consecutive re-open, with jitter
  Duration max_open_for{300000};
  uint32_t half_open_permitted{3};
  uint32_t half_open_successes_to_close{2};
  Duration half_open_max_wait{10000};  // a probe not finished by then counts as a failure
  bool shadow{false};                  // mode: shadow -> evaluate and count, never block
  // Field-wise: decides what state a reload may keep.
  bool operator==(const CircuitBreakerConfig&) const = default;
};

struct OutlierDetectionConfig {
  bool enabled{false};
  uint32_t consecutive_failures{5};        // consecutive 5xx
  uint32_t consecutive_local_failures{5};  // consecutive connect failures/resets/timeouts
  Duration interval{10000};
  uint32_t failure_percentage{0};          // 0: off; else eject above this % in an interval
  uint32_t minimum_requests{20};           // per endpoint per interval, for the percentage
  Duration base_ejection{30000};           // x number of ejections, capped by max_ejection
  Duration max_ejection{300000};
  uint32_t max_ejection_percent{50};
  // Field-wise: decides what state a reload may keep.
  bool operator==(const OutlierDetectionConfig&) const = default;
};

struct HealthCheckConfig {
  bool enabled{false};
  std::string path{"/healthz"};
  std::string host;                        // Host header; empty: the endpoint address
  std::vector<int> expected_statuses;      // empty: 200-399
  Duration interval{5000};
  uint32_t jitter_percent{10};
  Duration timeout{1000};
  uint32_t unhealthy_threshold{3};
  uint32_t healthy_threshold{2};
  // Field-wise: decides what state a reload may keep.
  bool operator==(const HealthCheckConfig&) const = default;
};

struct FailoverConfig {
  uint32_t min_healthy_percent{70};        // spill to the next priority below this
  uint32_t panic_threshold_percent{50};    // below this everywhere: balance across all
  // Field-wise: decides what state a reload may keep.
  bool operator==(const FailoverConfig&) const = default;
};

struct Endpoint {
  SocketAddress address;
  uint32_t priority{0};
  uint32_t weight{1};
  // Field-wise: decides what state a reload may keep.
  bool operator==(const Endpoint&) const = default;
};

struct UpstreamLimits {
  uint32_t max_connections{1024};  // per upstream, per worker
  uint32_t max_pending{1024};      // requests waiting for a connection
  uint32_t max_requests{1024};     // concurrent requests
  // Field-wise: decides what state a reload may keep.
  bool operator==(const UpstreamLimits&) const = default;
};

// `endpoints_from: { failover: postgres, role: primary|replica }` (tcp upstreams): the endpoints
// follow the companion's view of the PostgreSQL cluster instead of a static list.
struct EndpointsFrom {
  enum class Role { None, Primary, Replica };
  Role role{Role::None};  // None: static `endpoints`
  // Field-wise: decides what state a reload may keep.
  bool operator==(const EndpointsFrom&) const = default;
};

struct Upstream {
  std::string name;
  std::vector<Endpoint> endpoints;
  EndpointsFrom endpoints_from;
  UpstreamProtocol protocol{UpstreamProtocol::Http1};
  Duration connect_timeout{1000};
  Duration idle_timeout{60000};
  LoadBalancerKind load_balancer{LoadBalancerKind::RoundRobin};
  HashOn hash_on;
  UpstreamLimits limits;
  CircuitBreakerConfig circuit_breaker;
  OutlierDetectionConfig outlier_detection;
  HealthCheckConfig health_check;
  FailoverConfig failover;
  Duration dns_refresh{30000};  // re-resolution period for DNS-named endpoints
  // Field-wise: decides what state a reload may keep.
  bool operator==(const Upstream&) const = default;
};

// metrics.slo: the objectives of the SLA report (GET /admin/sla, levee_sla_* gauges).
struct SloConfig {
  double availability_percent{0};  // (0, 100); 0: no availability objective
  Duration latency_threshold{0};   // > 0 with latency_percent; 0: no latency objective
  double latency_percent{0};       // (0, 100): share of requests within the threshold
};

struct MetricsConfig {
  std::vector<double> latency_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  SloConfig slo;
};

struct AccessLogConfig {
  std::string path{"stdout"};  // stdout | stderr | off | a file path
  std::string format{"json"};  // json
};

struct DrainConfig {
  Duration delay{0};       // SIGTERM: keep accepting this long (endpoints update)
  Duration grace{25000};   // exit at the latest after this
};

// `degradation` (DESIGN section 6; issue "operations"). Levels: 0 normal, 1 shed noncore
// routes, 2 read-only, 3 answer from the fallback chain, 4 maintenance.
struct DegradationAutoConfig {
  bool enabled{false};
  uint32_t max_level{2};                // the highest level automation may set (1..3)
  uint32_t breaker_open_percent{0};     // 0: off; raise at >= this % of upstreams with an open breaker
  double burn_rate{0};                  // 0: off; raise at >= this error-budget burn rate
  double availability{99.9};            // the objective the burn rate is measured against (%)
  Duration window{60000};               // burn rate window
  uint32_t minimum_requests{20};        // requests in the window before the burn rate counts
  Duration cooldown{60000};             // a level is held at least this long before lowering
  uint32_t hysteresis_percent{50};      // lower only when every trigger is below threshold x (1 - h%)
  bool operator==(const DegradationAutoConfig&) const = default;
};

struct MaintenanceConfig {
  int status{503};
  Duration retry_after{300000};
  std::string body_file;  // as written; empty: a built-in JSON body
  std::string body;       // the contents of body_file, read at load time
  std::string content_type{"text/html; charset=utf-8"};
  bool operator==(const MaintenanceConfig&) const = default;
};

struct DegradationConfig {
  uint32_t level{0};                      // the policy's level (an operator's level wins)
  std::string state_file;                 // empty: the operator's level does not survive a restart
  std::vector<std::string> read_only_methods{"GET", "HEAD", "OPTIONS"};
  Duration retry_after{30000};            // Retry-After on levels 1-3 refusals
  MaintenanceConfig maintenance;
  DegradationAutoConfig automatic;        // `auto`
  bool operator==(const DegradationConfig&) const = default;
};

// `companion.failover.postgres` (DESIGN section 8; companion/README.md "Failover").
struct FailoverMember {
  std::string name;       // label value and API name ("pg-0")
  std::string dsn;        // libpq keyword/value connection string
  SocketAddress address;  // host/hostaddr and port of the DSN: where the L4 route connects
  // Field-wise: decides what state a reload may keep.
  bool operator==(const FailoverMember&) const = default;
};

struct PostgresFailoverConfig {
  bool enabled{false};  // the section is present
  std::vector<FailoverMember> members;
  Duration check_interval{1000};
  Duration check_timeout{1000};      // connect + queries of one check (and of pg_promote: 10x)
  uint32_t failure_threshold{3};     // consecutive failed checks of the primary
  uint64_t max_lag{16 * 1024 * 1024};  // WAL bytes behind the last known primary position
  enum class LeaseBackend { None, Etcd };
  LeaseBackend lease_backend{LeaseBackend::None};
  // backend etcd (companion/failover/lease_etcd.h): the v3 JSON gateway of these endpoints
  // ("http://host:port" or "https://host:port", tried in order), the key every levee of the
  // cluster competes for, and the lease TTL (renewed every ttl/3; held() is believed for
  // ttl - ttl/4 after a renewal).
  std::vector<std::string> lease_endpoints;
  std::string lease_key;
  Duration lease_ttl{10000};
  // `lease.tls`, for https:// endpoints: the CA bundle that signs etcd's certificate (empty:
  // the system's), the client certificate and key (etcd --client-cert-auth), and `verify`.
  std::string lease_tls_ca_file;
  std::string lease_tls_cert_file;
  std::string lease_tls_key_file;
  bool lease_tls_verify{true};
  bool auto_failover{true};          // false: detect and report only, promote through the API
  // Field-wise: decides what state a reload may keep.
  bool operator==(const PostgresFailoverConfig&) const = default;
};

// `companion.backup.s3` (companion/README.md "S3 store"): the bucket is the source of truth for
// list/restore/delete/retention; the local `dir` is the staging area. Secrets are never in the
// YAML: each credential comes from a file (`*_file`) or an environment variable (`*_env`).
struct BackupS3Config {
  bool enabled{false};
  std::string endpoint;                 // http(s)://host[:port]
  std::string bucket;
  std::string prefix;                   // "" or "a/b/" (always ends in '/')
  std::string region{"us-east-1"};
  std::string access_key_id_file;       // exactly one of _file/_env per credential
  std::string access_key_id_env;
  std::string secret_access_key_file;
  std::string secret_access_key_env;
  bool tls_verify{true};                // `tls.verify` (https endpoints)
  std::string tls_ca_file;              // `tls.ca_file`
  Duration connect_timeout{5000};
  Duration stall_timeout{60000};        // a transfer moving no byte for this long fails
  bool keep_local{false};               // keep the staged copy after the upload was verified
  uint64_t multipart_part_size{64ull << 20};  // larger artifacts: multipart upload in parts of this size
  bool operator==(const BackupS3Config&) const = default;
};

// `companion.backup.wal_archive` (companion/wal/README.md): a supervised pg_receivewal into the
// store, for base backups and point-in-time restores.
struct WalArchiveConfig {
  bool enabled{false};              // the block is present and `enabled` is not false
  std::string dsn;                  // libpq conninfo without dbname (default: targets.postgres.dsn)
  std::string slot{"levee_wal"};    // physical replication slot, created if missing
  std::string dir;                  // absolute; default <backup.dir>/wal
  Duration restart_backoff{1000};   // first restart delay after pg_receivewal exits; doubles
  Duration max_restart_backoff{30000};
  Duration status_interval{1000};   // how often the archive's lag is measured
  bool synchronous{true};           // pg_receivewal --synchronous (fsync as it receives)
  // With `companion.backup.s3`: the archive's segments also go to <prefix>wal/ in the bucket
  // (companion/wal/README.md "WAL in the S3 store"); a copy of the backup's s3 block.
  BackupS3Config s3;
  Duration partial_upload_interval{60000};  // s3: upload a snapshot of the .partial this often; 0: never
  bool operator==(const WalArchiveConfig&) const = default;
};

// `companion.backup` (DESIGN section 8; companion/README.md). Off unless the section is present.
struct BackupConfig {
  bool enabled{false};
  std::string dir;                          // local store (required)
  std::string postgres_dsn;                 // libpq connection string without dbname
  std::vector<std::string> postgres_databases;
  bool redis_enabled{false};
  SocketAddress redis_address;
  std::string redis_restore_bind;           // IP the temporary restore redis-server binds; empty: 127.0.0.1
  std::string redis_username;               // AUTH user (ACL); empty: the default user
  std::string redis_password_file;          // AUTH password: at most one of _file/_env; none: no AUTH
  std::string redis_password_env;
  std::vector<std::string> file_paths;      // absolute directories, archived with tar
  uint32_t retention_daily{7};
  uint32_t retention_weekly{4};
  uint32_t retention_monthly{12};
  std::string schedule;                     // 5-field cron (UTC); empty: API only
  WalArchiveConfig wal_archive;
  BackupS3Config s3;                        // `s3`: off unless present
  bool operator==(const BackupConfig&) const = default;
};

struct CompanionConfig {
  PostgresFailoverConfig failover_postgres;
  BackupConfig backup;
};

struct Policy {
  int version{1};
  std::string service;
  std::string source_file;  // where it was loaded from
  uint64_t content_hash{0};  // FNV-1a 64 of the file's bytes (levee_config_hash, /admin/config)
  AdminConfig admin;
  ProbesConfig probes;
  std::vector<Listener> listeners;
  std::map<std::string, Upstream> upstreams;
  MetricsConfig metrics;
  AccessLogConfig access_log;
  DrainConfig drain;
  DegradationConfig degradation;
  FaultsConfig faults;
  CompanionConfig companion;
};

using PolicyConstSharedPtr = std::shared_ptr<const Policy>;

}  // namespace levee::config
