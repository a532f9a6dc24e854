// postgres_test's fixture_backend: each fixture a database of its own on one
// throwaway cluster the whole executable shares.
#pragma once

#include "support/fixture_backend.hpp"
#include "support/postgres_server.hpp"

#include <chrono>

namespace tether::test {

/// The cluster fixtures made from now on use: the shared one unless a test
/// that stops its database sets a cluster of its own (and resets it).
inline postgres_server* fixture_cluster = nullptr;

/// `--db-timeout` of the fixtures made from now on (a test about timeouts
/// shortens it, and resets it).
inline std::chrono::milliseconds fixture_db_timeout{5'000};

}  // namespace tether::test
