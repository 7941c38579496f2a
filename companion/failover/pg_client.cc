#include "companion/failover/pg_client.h"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "companion/failover/lsn.h"

namespace levee::companion::failover {
namespace {

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

std::string trimmed(const char* msg) {
  std::string s = msg != nullptr ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

ConnPtr connect(const std::string& dsn, std::chrono::milliseconds timeout, std::string& error) {
  // Later keywords win in libpq: ours bound the time and name the session in pg_stat_activity.
  const long seconds = std::max<long>(2, static_cast<long>((timeout.count() + 999) / 1000));
  const std::string conninfo = dsn + " connect_timeout=" + std::to_string(seconds) +
                               " application_name=levee-failover options='-c statement_timeout=" +
                               std::to_string(timeout.count()) + "'";
  ConnPtr conn(PQconnectdb(conninfo.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    error = conn ? trimmed(PQerrorMessage(conn.get())) : "out of memory";
    return nullptr;
  }
  return conn;
}

std::optional<uint64_t> lsnField(PGresult* r, int col) {
  if (PQgetisnull(r, 0, col) != 0) {
    return std::nullopt;
  }
  return parseLsn(PQgetvalue(r, 0, col));
}

// Runs `sql`, which returns one row with one column, into `value`. Returns false (and fills
// `error`, prefixed with `what`) otherwise.
bool singleValue(PGconn* conn, const char* sql, std::string_view what, std::string& value,
                 std::string& error) {
  ResultPtr r(PQexec(conn, sql));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
    error = std::string(what) + " failed: " + trimmed(PQerrorMessage(conn));
    return false;
  }
  value = PQgetvalue(r.get(), 0, 0);
  return true;
}

}  // namespace

Observation checkMember(const std::string& dsn, std::chrono::milliseconds timeout) {
  Observation obs;
  ConnPtr conn = connect(dsn, timeout, obs.error);
  if (!conn) {
    return obs;
  }
  ResultPtr r(PQexec(conn.get(),
                     "SELECT pg_is_in_recovery(), "
                     "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, "
                     "pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()"));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
    obs.error = "check query failed: " + trimmed(PQerrorMessage(conn.get()));
    return obs;
  }
  obs.reachable = true;
  obs.in_recovery = std::string_view(PQgetvalue(r.get(), 0, 0)) == "t";
  obs.current_lsn = lsnField(r.get(), 1).value_or(0);
  obs.receive_lsn = lsnField(r.get(), 2).value_or(0);
  obs.replay_lsn = lsnField(r.get(), 3).value_or(0);
  return obs;
}

PromoteResult promoteMember(const std::string& dsn, std::chrono::milliseconds timeout) {
  PromoteResult out;
  // pg_promote waits up to wait_seconds for the end of recovery; the statement timeout must
  // be longer than that.
  const auto promote_timeout = std::max(timeout * 10, std::chrono::milliseconds(10000));
  ConnPtr conn = connect(dsn, promote_timeout + std::chrono::milliseconds(2000), out.error);
  if (!conn) {
    return out;
  }
  const std::string sql = "SELECT pg_promote(wait => true, wait_seconds => " +
                          std::to_string(promote_timeout.count() / 1000) + ")";
  std::string value;
  if (!singleValue(conn.get(), sql.c_str(), "pg_promote", value, out.error)) {
    return out;
  }
  if (value != "t") {
    out.error = "pg_promote returned false (recovery did not end in time)";
    return out;
  }
  if (!singleValue(conn.get(), "SELECT pg_is_in_recovery()", "confirming the promotion", value,
                   out.error)) {
    return out;
  }
  if (value != "f") {
    out.error = "still in recovery after pg_promote";
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace levee::companion::failover
