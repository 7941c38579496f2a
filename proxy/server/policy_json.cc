#include "proxy/server/policy_json.h"

#include "proxy/common/json.h"

namespace levee::server {
namespace {

int64_t ms(config::Duration d) { return static_cast<int64_t>(d.count()); }

const char* pathKind(config::RouteMatch::PathKind k) {
  switch (k) {
    case config::RouteMatch::PathKind::Exact: return "path";
    case config::RouteMatch::PathKind::Prefix: return "prefix";
    case config::RouteMatch::PathKind::Regex: return "regex";
    case config::RouteMatch::PathKind::Any: break;
  }
  return "any";
}

}  // namespace

std::string policyToJson(const config::Policy& p) {
  std::string out;
  json::Writer w(out);
  w.beginObject();
  w.key("version").value(p.version).key("service").value(p.service);
  w.key("admin").beginObject().key("address").value(p.admin.address.toString());
  w.key("token_file").value(p.admin.token_file.empty() ? "" : "<redacted path set>").endObject();
  w.key("probes").beginObject().key("address").value(p.probes.address.toString()).endObject();
  w.key("listeners").beginArray();
  for (const auto& l : p.listeners) {
    w.beginObject().key("name").value(l.name).key("address").value(l.address.toString());
    w.key("protocol").value(l.protocol == config::ListenerProtocol::Http ? "http" : "tcp");
    w.key("direction").value(l.direction == config::ListenerDirection::Outbound ? "outbound" : "inbound");
    if (l.protocol == config::ListenerProtocol::Tcp) {
      w.key("upstream").value(l.upstream);
    } else {
      w.key("limits").beginObject();
      w.key("max_header_bytes").value(l.limits.max_header_bytes).key("max_headers").value(l.limits.max_headers);
      w.key("header_timeout_ms").value(ms(l.limits.header_timeout));
      w.key("max_body_bytes").value(l.limits.max_body_bytes);
      w.key("idle_timeout_ms").value(ms(l.limits.idle_timeout)).endObject();
      w.key("trust_forwarded").value(l.trust_forwarded);
      w.key("routes").beginArray();
      for (const auto& r : l.routes) {
        w.beginObject().key("name").value(r.name).key("upstream").value(r.upstream);
        w.key("match").beginObject();
        if (r.match.path_kind != config::RouteMatch::PathKind::Any) {
          w.key(pathKind(r.match.path_kind)).value(r.match.path);
        }
        if (!r.match.methods.empty()) {
          w.key("methods").beginArray();
          for (const auto& m : r.match.methods) {
            w.value(m);
          }
          w.endArray();
        }
        if (!r.match.headers.empty()) {
          w.key("headers").beginObject();
          for (const auto& h : r.match.headers) {
            w.key(h.name).value(h.value);
          }
          w.endObject();
        }
        if (!r.match.host.empty()) {
          w.key("host").value(r.match.host);
        }
        w.endObject();
        w.key("tier").value(r.tier == config::RouteTier::Core ? "core" : "noncore");
        w.key("timeout_ms").value(ms(r.timeout)).endObject();
      }
      w.endArray();
    }
    w.endObject();
  }
  w.endArray();
  w.key("upstreams").beginObject();
  for (const auto& [name, u] : p.upstreams) {
    w.key(name).beginObject();
    w.key("protocol").value(u.protocol == config::UpstreamProtocol::Tcp ? "tcp" : "http1");
    w.key("endpoints").beginArray();
    for (const auto& e : u.endpoints) {
      w.beginObject().key("address").value(e.address.toString()).key("priority").value(e.priority);
      w.key("weight").value(e.weight).endObject();
    }
    w.endArray();
    if (u.endpoints_from.role != config::EndpointsFrom::Role::None) {
      w.key("endpoints_from").beginObject().key("failover").value("postgres").key("role");
      w.value(u.endpoints_from.role == config::EndpointsFrom::Role::Primary ? "primary" : "replica").endObject();
    }
    w.key("connect_timeout_ms").value(ms(u.connect_timeout)).key("idle_timeout_ms").value(ms(u.idle_timeout));
    static constexpr const char* kLb[] = {"round_robin", "least_request", "random", "hash"};
    w.key("load_balancer").value(kLb[static_cast<int>(u.load_balancer)]);
    w.key("limits").beginObject().key("max_connections").value(u.limits.max_connections);
    w.key("max_pending").value(u.limits.max_pending).key("max_requests").value(u.limits.max_requests).endObject();
    w.endObject();
  }
  w.endObject();
  w.key("access_log").beginObject().key("path").value(p.access_log.path).key("format").value(p.access_log.format).endObject();
  w.key("drain").beginObject().key("delay_ms").value(ms(p.drain.delay)).key("grace_ms").value(ms(p.drain.grace)).endObject();
  if (const auto& f = p.companion.failover_postgres; f.enabled) {
    // DSNs may carry passwords: only the member addresses are shown.
    w.key("companion").beginObject().key("failover").beginObject().key("postgres").beginObject();
    w.key("members").beginArray();
    for (const auto& m : f.members) {
      w.beginObject().key("name").value(m.name).key("address").value(m.address.toString());
      w.key("dsn").value("<redacted>").endObject();
    }
    w.endArray().key("check_interval_ms").value(ms(f.check_interval));
    w.key("check_timeout_ms").value(ms(f.check_timeout)).key("failure_threshold").value(f.failure_threshold);
    w.key("max_lag_bytes").value(f.max_lag).key("lease").beginObject();
    if (f.lease_backend == config::PostgresFailoverConfig::LeaseBackend::Etcd) {
      w.key("backend").value("etcd").key("endpoints").beginArray();
      for (const auto& e : f.lease_endpoints) {
        w.value(e);
      }
      w.endArray().key("key").value(f.lease_key).key("ttl_ms").value(ms(f.lease_ttl));
      if (!f.lease_tls_ca_file.empty() || !f.lease_tls_cert_file.empty() || !f.lease_tls_verify) {
        w.key("tls").beginObject().key("ca_file").value(f.lease_tls_ca_file);
        w.key("cert_file").value(f.lease_tls_cert_file).key("key_file").value(f.lease_tls_key_file);
        w.key("verify").value(f.lease_tls_verify).endObject();
      }
    } else {
      w.key("backend").value("none");
    }
    w.endObject();
    w.key("auto_failover").value(f.auto_failover).endObject().endObject().endObject();
  }
  w.endObject();
  return out;
}

}  // namespace levee::server
