// The store under a gateway_fixture. gateway_test and app_test link the
// SQLite one (support/sqlite_fixture_backend.cpp), postgres_test the one on
// a throwaway PostgreSQL cluster (support/postgres_fixture_backend.cpp): the
// same test cases, compiled once, run against both backends.
#pragma once

#include "base/log.hpp"
#include "gateway/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace tether::test {

class fixture_backend {
public:
    virtual ~fixture_backend() = default;

    /// A store on the same data as the last one this backend opened: a
    /// gateway restart keeps its database. `storage` is the fixture's
    /// blocking-storage thread; `dir` its temp directory.
    virtual gateway::store& open(boost::asio::io_context& ioc, const std::filesystem::path& dir,
                                 boost::asio::any_io_executor storage, const log::logger& log) = 0;
    /// Events reach the hub: on PostgreSQL from the tail, started here and
    /// caught up before this returns.
    virtual void start_feed(boost::asio::io_context& ioc) = 0;
    virtual void stop_feed(boost::asio::io_context& ioc) = 0;
    /// The store goes; its data stays for the next open().
    virtual void close() = 0;
    /// Everything the store keeps at rest, as bytes.
    virtual std::string stored_bytes(const std::filesystem::path& dir) = 0;
    /// The rows `table` holds now, read beside the store.
    virtual std::int64_t count_rows(const std::filesystem::path& dir, const std::string& table) = 0;
    /// From now on (until called with false) every row inserted into
    /// `table` fails, as a write fails on a fault: a trigger, set beside
    /// the store.
    virtual void refuse_inserts(const std::filesystem::path& dir, const std::string& table, bool refuse) = 0;
};

std::unique_ptr<fixture_backend> make_fixture_backend();

}  // namespace tether::test
