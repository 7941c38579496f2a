// libpq, opened on first use (companion/dl_library.h explains why it is not linked). Callers
// include <libpq-fe.h> and call PQ* as usual.
//
// If libpq.so.5 (or one of its symbols) cannot be loaded, every call fails the way libpq fails
// on a dead server: PQconnectdb returns null, PQstatus says CONNECTION_BAD, PQexec returns null
// (PGRES_FATAL_ERROR), and PQerrorMessage carries the dlopen error, which the callers already
// log and put into the job or member state.

#include <libpq-fe.h>

#include <string>

#include "companion/dl_library.h"

namespace {

// X(return type, name, (parameters), (arguments), value when libpq is unavailable)
#define LEVEE_LIBPQ_FUNCTIONS(X)                                                                  \
  X(PGconn*, PQconnectdb, (const char* conninfo), (conninfo), nullptr)                            \
  X(void, PQfinish, (PGconn * conn), (conn), void())                                              \
  X(ConnStatusType, PQstatus, (const PGconn* conn), (conn), CONNECTION_BAD)                       \
  X(int, PQserverVersion, (const PGconn* conn), (conn), 0)                                        \
  X(PGresult*, PQexec, (PGconn * conn, const char* query), (conn, query), nullptr)                \
  X(PGresult*, PQexecParams,                                                                      \
    (PGconn * conn, const char* command, int nParams, const Oid* paramTypes,                      \
     const char* const* paramValues, const int* paramLengths, const int* paramFormats,            \
     int resultFormat),                                                                           \
    (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat),  \
    nullptr)                                                                                      \
  X(ExecStatusType, PQresultStatus, (const PGresult* res), (res), PGRES_FATAL_ERROR)              \
  X(char*, PQresultErrorMessage, (const PGresult* res), (res), unavailableMessage())              \
  X(int, PQntuples, (const PGresult* res), (res), 0)                                              \
  X(int, PQnfields, (const PGresult* res), (res), 0)                                              \
  X(char*, PQgetvalue, (const PGresult* res, int tup_num, int field_num), (res, tup_num, field_num), \
    emptyString())                                                                                \
  X(int, PQgetisnull, (const PGresult* res, int tup_num, int field_num), (res, tup_num, field_num), 1) \
  X(int, PQgetlength, (const PGresult* res, int tup_num, int field_num), (res, tup_num, field_num), 0) \
  X(char*, PQfname, (const PGresult* res, int field_num), (res, field_num), nullptr)               \
  X(char*, PQcmdTuples, (PGresult * res), (res), emptyString())                                   \
  X(void, PQclear, (PGresult * res), (res), void())                                               \
  X(char*, PQescapeIdentifier, (PGconn * conn, const char* str, size_t len), (conn, str, len), nullptr) \
  X(char*, PQescapeLiteral, (PGconn * conn, const char* str, size_t len), (conn, str, len), nullptr) \
  X(void, PQfreemem, (void* ptr), (ptr), void())                                                  \
  X(char*, PQerrorMessage, (const PGconn* conn), (conn), unavailableMessage())

struct Libpq {
#define LEVEE_LIBPQ_POINTER(ret, name, params, args, fallback) ret(*name) params = nullptr;
  LEVEE_LIBPQ_FUNCTIONS(LEVEE_LIBPQ_POINTER)
#undef LEVEE_LIBPQ_POINTER
  std::string error;  // why libpq is unavailable ("" when loaded)
};

const Libpq& libpq() {
  // Thread-safe one-time load (the backup and failover threads may be first).
  static const Libpq lib = [] {
    static levee::companion::DlLibrary dl("libpq.so.5", "libpq5");
    Libpq l;
#define LEVEE_LIBPQ_RESOLVE(ret, name, params, args, fallback) dl.resolve(l.name, #name);
    LEVEE_LIBPQ_FUNCTIONS(LEVEE_LIBPQ_RESOLVE)
#undef LEVEE_LIBPQ_RESOLVE
    if (!dl.ok()) {
      Libpq none;  // all or nothing: never a mix of real calls and fallbacks
      none.error = dl.error() + "\n";
      return none;
    }
    return l;
  }();
  return lib;
}

char* unavailableMessage() { return const_cast<char*>(libpq().error.c_str()); }

char* emptyString() {
  static char empty[1] = {'\0'};
  return empty;
}

}  // namespace

extern "C" {
#define LEVEE_LIBPQ_FORWARD(ret, name, params, args, fallback) \
  ret name params {                                            \
    const Libpq& l = libpq();                                  \
    return l.name != nullptr ? l.name args : fallback;         \
  }
LEVEE_LIBPQ_FUNCTIONS(LEVEE_LIBPQ_FORWARD)
#undef LEVEE_LIBPQ_FORWARD
}
