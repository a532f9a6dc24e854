// The PostgreSQL schema, versioned in code, and its migration: N replicas
// starting together take one advisory lock, so exactly one applies each
// step; a replica refuses a schema newer than it knows.
#pragma once

#include "gateway/postgres/pg_connection.hpp"

#include <span>
#include <string_view>

namespace tether::gateway::postgres {

/// The gateway's migrations: entry N takes the schema from version N to
/// N+1. Never edit an entry that has shipped; append.
std::span<const std::string_view> gateway_migrations() noexcept;

/// The advisory lock key migrations hold ("tether" + 1).
inline constexpr std::int64_t migration_lock_key = 0x7465746865720001;

/// Applies what `migrations` has beyond the stored version, each step in a
/// transaction, under the advisory lock; returns the version now. Fails
/// (SQLSTATE "TE001") when the stored version is newer than `migrations`.
awaitable<pg_result<int>> migrate(pg_connection& c, std::span<const std::string_view> migrations,
                                  std::chrono::milliseconds timeout);

}  // namespace tether::gateway::postgres
