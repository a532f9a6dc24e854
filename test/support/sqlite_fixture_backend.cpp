#include "gateway/sqlite_storage.hpp"
#include "gateway/sqlite_store.hpp"
#include "support/fixture_backend.hpp"

#include <boost/test/unit_test.hpp>

#include <sqlite3.h>

#include <fstream>
#include <iterator>

namespace tether::test {

namespace {

class sqlite_backend final : public fixture_backend {
public:
    gateway::store& open(boost::asio::io_context&, const std::filesystem::path& dir,
                         boost::asio::any_io_executor storage, const log::logger&) override
    {
        file_ = std::make_unique<gateway::sqlite_storage>(dir / "tether.db");
        store_ = std::make_unique<gateway::sqlite_store>(*file_, std::move(storage));
        return *store_;
    }
    void start_feed(boost::asio::io_context&) override {}
    void stop_feed(boost::asio::io_context&) override {}
    void close() override
    {
        store_.reset();
        file_.reset();
    }
    std::string stored_bytes(const std::filesystem::path& dir) override
    {
        std::string all;
        for (const auto& f : std::filesystem::directory_iterator(dir)) {
            std::ifstream in(f.path(), std::ios::binary);
            all.append((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        }
        return all;
    }

    void refuse_inserts(const std::filesystem::path& dir, const std::string& table, bool refuse) override
    {
        sqlite3* db = nullptr;
        const int opened = sqlite3_open_v2((dir / "tether.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
        std::unique_ptr<sqlite3, decltype(&sqlite3_close)> own(db, &sqlite3_close);
        BOOST_TEST_REQUIRE(opened == SQLITE_OK, sqlite3_errstr(opened));
        sqlite3_busy_timeout(db, 5000);
        const std::string trigger = "tether_test_refuse_" + table;
        const std::string sql = refuse ? "CREATE TRIGGER " + trigger + " BEFORE INSERT ON " + table +
                                             " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                                       : "DROP TRIGGER " + trigger;
        BOOST_TEST_REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK,
                           sqlite3_errmsg(db));
    }

    std::int64_t count_rows(const std::filesystem::path& dir, const std::string& table) override
    {
        // A connection of its own: a WAL reader sees what the store committed.
        sqlite3* db = nullptr;
        const int opened = sqlite3_open_v2((dir / "tether.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
        std::unique_ptr<sqlite3, decltype(&sqlite3_close)> own(db, &sqlite3_close);
        BOOST_TEST_REQUIRE(opened == SQLITE_OK, sqlite3_errstr(opened));
        sqlite3_stmt* stmt = nullptr;
        const std::string sql = "SELECT count(*) FROM " + table;
        BOOST_TEST_REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK, sql);
        std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> query(stmt, &sqlite3_finalize);
        BOOST_TEST_REQUIRE(sqlite3_step(stmt) == SQLITE_ROW, sql);
        return sqlite3_column_int64(stmt, 0);
    }

private:
    std::unique_ptr<gateway::sqlite_storage> file_;
    std::unique_ptr<gateway::sqlite_store> store_;
};

}  // namespace

std::unique_ptr<fixture_backend> make_fixture_backend()
{
    return std::make_unique<sqlite_backend>();
}

}  // namespace tether::test
