#pragma once
// Result<T> = std::expected<T, Error> for the control plane (config, admin, startup).
// The data plane uses ProxyError (proxy/common/proxy_error.h) and local replies instead.

#include <expected>
#include <string>
#include <utility>
#include <vector>

namespace levee {

struct Error {
  std::string message;
  // Optional location, filled for config errors: FILE:LINE:COL (1-based) and YAML path.
  std::string file;
  int line{0};
  int column{0};
  std::string path;

  // "FILE:LINE:COL: path: message" (location parts omitted when unknown).
  std::string toString() const;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> makeError(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace levee

#define LEVEE_CONCAT_INNER_(a, b) a##b
#define LEVEE_CONCAT_(a, b) LEVEE_CONCAT_INNER_(a, b)

// LEVEE_ASSIGN_OR_RETURN(auto x, expr): returns the error of `expr` from the enclosing function.
#define LEVEE_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto LEVEE_CONCAT_(levee_r_, __LINE__) = (expr);                          \
  if (!LEVEE_CONCAT_(levee_r_, __LINE__)) {                                 \
    return std::unexpected(std::move(LEVEE_CONCAT_(levee_r_, __LINE__)).error()); \
  }                                                                         \
  lhs = std::move(*LEVEE_CONCAT_(levee_r_, __LINE__))

#define LEVEE_RETURN_IF_ERROR(expr)                         \
  do {                                                      \
    auto levee_s_ = (expr);                                 \
    if (!levee_s_) {                                        \
      return std::unexpected(std::move(levee_s_).error());  \
    }                                                       \
  } while (0)
