#pragma once
namespace levee::server {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace levee::server
