#pragma once
// Named spdlog loggers, one per component (STYLE B.9). Created once by initLogging().

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace levee::log {

enum class Id { Main, Config, Conn, Http, Router, Upstream, Admin, Tcp, Companion, Count };

// Sets up the async stderr loggers. Safe to call more than once (later calls change the level).
void initLogging(std::string_view level);
spdlog::logger& get(Id id);

}  // namespace levee::log

#define LEVEE_LOG(id, lvl, ...) \
  ::levee::log::get(::levee::log::Id::id).log(spdlog::level::lvl, __VA_ARGS__)
