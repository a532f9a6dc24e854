#include "support/postgres_fixture_backend.hpp"

#include "gateway/postgres/pg_store.hpp"
#include "support/run_for.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/test/unit_test.hpp>

namespace tether::test {

namespace {

class postgres_backend final : public fixture_backend {
public:
    gateway::store& open(boost::asio::io_context& ioc, const std::filesystem::path&,
                         boost::asio::any_io_executor, const log::logger& log) override
    {
        if (!cluster_) cluster_ = fixture_cluster ? fixture_cluster : &shared_postgres();
        if (database_.empty()) database_ = cluster_->new_database();
        gateway::postgres::store_options o;
        o.pool.conninfo = cluster_->conninfo(database_);
        o.pool.reconnect = {std::chrono::milliseconds(50), std::chrono::milliseconds(500)};
        o.pool.size = 4;
        o.pool.statement_timeout = fixture_db_timeout;
        store_ = std::make_unique<gateway::postgres::pg_store>(
            ioc.get_executor(), o, [] { return 0.5; }, log);
        auto opened = run_for(ioc, store_->open());
        BOOST_TEST_REQUIRE(opened.has_value(), opened.error().message);
        return *store_;
    }

    void start_feed(boost::asio::io_context& ioc) override
    {
        feed_done_ = false;
        boost::asio::co_spawn(
            ioc, store_->run_feed(),
            boost::asio::bind_cancellation_slot(feed_stop_.slot(),
                                                [this](const std::exception_ptr&) { feed_done_ = true; }));
        // Caught up before the test publishes: events reach the hub from the feed.
        BOOST_TEST_REQUIRE(poll_until(
            ioc, [this] { return store_->status().feed_ready; }, std::chrono::seconds(10)));
    }

    void stop_feed(boost::asio::io_context& ioc) override
    {
        if (!store_ || feed_done_) return;
        feed_stop_.emit(boost::asio::cancellation_type::terminal);
        BOOST_TEST(poll_until(
                       ioc, [this] { return feed_done_; }, std::chrono::seconds(10)),
                   "feed did not stop");
    }

    void close() override { store_.reset(); }

    void refuse_inserts(const std::filesystem::path&, const std::string& table, bool refuse) override
    {
        const std::string trigger = "tether_test_refuse_" + table;
        const auto r = cluster_->psql(
            database_,
            refuse ? "CREATE OR REPLACE FUNCTION tether_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; CREATE TRIGGER " +
                         trigger + " BEFORE INSERT ON " + table +
                         " FOR EACH ROW EXECUTE FUNCTION tether_test_refuse()"
                   : "DROP TRIGGER " + trigger + " ON " + table);
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
    }

    std::int64_t count_rows(const std::filesystem::path&, const std::string& table) override
    {
        const auto r = cluster_->psql(database_, "SELECT count(*) FROM " + table);
        BOOST_TEST_REQUIRE(r.status == 0, r.err);
        return std::stoll(r.out);
    }

    std::string stored_bytes(const std::filesystem::path&) override { return cluster_->dump(database_); }

private:
    postgres_server* cluster_ = nullptr;
    std::string database_;
    std::unique_ptr<gateway::postgres::pg_store> store_;
    boost::asio::cancellation_signal feed_stop_;
    bool feed_done_ = true;
};

}  // namespace

std::unique_ptr<fixture_backend> make_fixture_backend()
{
    return std::make_unique<postgres_backend>();
}

}  // namespace tether::test
