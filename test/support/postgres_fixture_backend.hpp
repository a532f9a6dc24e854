// postgres_test's fixture_backend: each fixture a database of its own on one
// throwaway cluster the whole executable shares.
#pragma once

#include "support/fixture_backend.hpp"
#include "support/postgres_server.hpp"

#include <chrono>

namespace tether::test {

/// The cluster fixtures made from now on use: the shared one unless a test
/// that stops its database sets a cluster of its own (own_cluster).
inline postgres_server* fixture_cluster = nullptr;

/// `--db-timeout` of the fixtures made from now on.
inline std::chrono::milliseconds fixture_db_timeout{5'000};

/// While it lives, fixtures are made on `cluster` (a test that stops, fills
/// or locks its database has one of its own) with `db_timeout`; then the
/// shared cluster and 5 s again, however the test ends.
class own_cluster {
public:
    explicit own_cluster(postgres_server& cluster,
                         std::chrono::milliseconds db_timeout = std::chrono::seconds(5))
    {
        fixture_cluster = &cluster;
        fixture_db_timeout = db_timeout;
    }
    ~own_cluster()
    {
        fixture_cluster = nullptr;
        fixture_db_timeout = std::chrono::seconds(5);
    }
    own_cluster(const own_cluster&) = delete;
    own_cluster& operator=(const own_cluster&) = delete;
};

}  // namespace tether::test
