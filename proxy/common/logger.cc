#include "proxy/common/logger.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <mutex>

namespace levee::log {
namespace {

constexpr std::array<const char*, static_cast<size_t>(Id::Count)> kNames = {
    "main", "config", "conn", "http", "router", "upstream", "admin", "tcp", "companion"};

std::once_flag g_once;
std::array<std::shared_ptr<spdlog::logger>, static_cast<size_t>(Id::Count)> g_loggers;

void createLoggers() {
  spdlog::init_thread_pool(8192, 1);
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  for (size_t i = 0; i < kNames.size(); ++i) {
    g_loggers[i] = std::make_shared<spdlog::async_logger>(
        kNames[i], sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    g_loggers[i]->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
    g_loggers[i]->flush_on(spdlog::level::warn);
  }
}

}  // namespace

void initLogging(std::string_view level) {
  std::call_once(g_once, createLoggers);
  auto lvl = spdlog::level::from_str(std::string(level));
  for (auto& l : g_loggers) {
    l->set_level(lvl);
  }
}

spdlog::logger& get(Id id) {
  std::call_once(g_once, createLoggers);
  return *g_loggers[static_cast<size_t>(id)];
}

}  // namespace levee::log
