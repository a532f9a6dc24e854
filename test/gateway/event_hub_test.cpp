#include "gateway/event_hub.hpp"

#include "net/http_server.hpp"
#include "support/run_for.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/test/unit_test.hpp>

#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using tether::gateway::event_hub;
using tether::gateway::event_record;
using tether::gateway::subscription;

BOOST_AUTO_TEST_SUITE(event_hub_suite)

BOOST_AUTO_TEST_CASE(slow_consumer_is_evicted_while_a_fast_one_keeps_up)
{
    asio::io_context ioc;
    event_hub hub({.queue = 4, .per_ip = 20, .global = 100});
    event_hub::refusal why{};
    auto slow = hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why);
    auto fast = hub.subscribe("acme", "n2", "10.0.0.2", asio::make_strand(ioc), &why);
    BOOST_TEST_REQUIRE((slow && fast));
    std::size_t fast_got = 0;
    for (std::int64_t i = 1; i <= 10; ++i) {
        hub.publish(event_record{i, "acme", "config-updated", "{}"});  // never waits for anyone
        const auto b = tether::test::run_for(ioc, fast->next(1s));
        BOOST_TEST((b.st == subscription::state::open));
        for (const auto& e : b.frames) BOOST_TEST(e->id == static_cast<std::int64_t>(++fast_got));
    }
    BOOST_TEST(fast_got == 10u);
    const auto s = tether::test::run_for(ioc, slow->next(1s));
    BOOST_TEST((s.st == subscription::state::evicted));
    BOOST_TEST(hub.evictions() == 1u);
}

BOOST_AUTO_TEST_CASE(org_filter_idle_and_limits)
{
    asio::io_context ioc;
    event_hub hub({.queue = 16, .per_ip = 1, .global = 2});
    event_hub::refusal why{};
    auto a = hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why);
    BOOST_TEST(!hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why));
    BOOST_TEST((why == event_hub::refusal::per_ip));
    auto admin = hub.subscribe("", "", "10.0.0.2", asio::make_strand(ioc), &why);
    BOOST_TEST_REQUIRE(admin != nullptr);
    // The admin stream has its own budget: a second node stream still fits.
    auto b = hub.subscribe("acme", "n3", "10.0.0.3", asio::make_strand(ioc), &why);
    BOOST_TEST(b != nullptr);
    BOOST_TEST(!hub.subscribe("acme", "n4", "10.0.0.4", asio::make_strand(ioc), &why));
    BOOST_TEST((why == event_hub::refusal::global));
    // And node streams cannot take the admin's.
    BOOST_TEST(hub.subscribe("", "", "10.0.0.1", asio::make_strand(ioc), &why) != nullptr);

    hub.publish(event_record{1, "beta", "config-updated", "{}"});
    const auto idle = tether::test::run_for(ioc, a->next(50ms));
    BOOST_TEST(idle.idle);
    BOOST_TEST(idle.frames.empty());
    BOOST_TEST(tether::test::run_for(ioc, admin->next(1s)).frames.size() == 1u);

    a.reset();  // releasing a stream frees its slot
    BOOST_TEST(hub.connections() == 2u);
    BOOST_TEST(hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why) != nullptr);
}

BOOST_AUTO_TEST_CASE(a_burst_is_one_batch_in_order_and_a_revoked_node_gets_nothing_after_its_event)
{
    asio::io_context ioc;
    event_hub hub({.queue = 64, .per_ip = 20, .global = 100});
    event_hub::refusal why{};
    auto node = hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why);
    auto other = hub.subscribe("acme", "n2", "10.0.0.2", asio::make_strand(ioc), &why);
    BOOST_TEST_REQUIRE((node && other));
    // Published while nothing runs: one delivery job takes all five.
    for (std::int64_t i = 1; i <= 5; ++i) hub.publish(event_record{i, "acme", "config-updated", "{}"});
    hub.close_node("n1", 3);
    hub.publish(event_record{6, "acme", "config-updated", "{}"});
    const auto b = tether::test::run_for(ioc, node->next(1s));
    std::vector<std::int64_t> ids;
    for (const auto& f : b.frames) ids.push_back(f->id);
    // Event 6 was published after the revocation; 4 and 5 before it was
    // known, and they are dropped too: the node's stream ends at event 3.
    BOOST_TEST(ids == (std::vector<std::int64_t>{1, 2, 3}),
               ids.size() << " first " << (ids.empty() ? 0 : ids.front()) << " last "
                          << (ids.empty() ? 0 : ids.back()));
    BOOST_TEST((tether::test::run_for(ioc, node->next(1s)).st == subscription::state::closed));
    const auto all = tether::test::run_for(ioc, other->next(1s));
    BOOST_TEST(all.frames.size() == 6u);
    // A frame is encoded once and shared by every stream that sends it.
    BOOST_TEST(all.frames.front().get() == b.frames.front().get());
    BOOST_TEST(b.frames.front()->chunk ==
               tether::net::encode_chunk("id: 1\nevent: config-updated\ndata: {}\n\n"));
}

BOOST_AUTO_TEST_CASE(a_peer_gone_ends_a_waiting_stream)
{
    asio::io_context ioc;
    event_hub hub;
    event_hub::refusal why{};
    auto s = hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why);
    BOOST_TEST_REQUIRE(s != nullptr);
    asio::post(ioc, [&] { s->end(); });
    BOOST_TEST((tether::test::run_for(ioc, s->next(5s)).st == subscription::state::closed));
    hub.publish(event_record{1, "acme", "config-updated", "{}"});
    BOOST_TEST(tether::test::run_for(ioc, s->next(50ms)).frames.empty());
}

namespace {

/// A stream socket that takes every byte at once. Its first write publishes
/// another event and takes a few milliseconds, as a write to a socket whose
/// peer must be woken does, so that event arrives while the delivery job
/// runs and the next job is held back for as long.
class publishing_writer final : public tether::net::body_writer {
public:
    explicit publishing_writer(event_hub& hub) : hub_(hub) {}
    std::string got;
    tether::awaitable<tether::error_code> write(std::string_view) override { co_return tether::error_code{}; }
    tether::awaitable<tether::error_code> write_encoded(std::span<const asio::const_buffer>) override
    {
        co_return tether::error_code{};
    }
    std::size_t try_write_encoded(std::span<const asio::const_buffer> chunks, tether::error_code& ec) override
    {
        ec = {};
        std::size_t n = 0;
        for (const auto& b : chunks) {
            got.append(static_cast<const char*>(b.data()), b.size());
            n += b.size();
        }
        if (!published_) {
            published_ = true;
            hub_.publish(event_record{2, "acme", "config-updated", "{}"});
            std::this_thread::sleep_for(3ms);
        }
        return n;
    }
    [[nodiscard]] bool writes_directly() const noexcept override { return true; }
    void when_writable(void (*)(void*), void*) override {}
    [[nodiscard]] std::chrono::milliseconds write_timeout() const noexcept override { return 10s; }
    void abort() override {}
    void on_peer_gone(void (*)(void*), void*) override {}

private:
    event_hub& hub_;
    bool published_ = false;
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_event_published_during_a_delivery_job_goes_with_the_next_one)
{
    asio::io_context ioc;
    event_hub hub({.queue = 64, .per_ip = 20, .global = 100});
    event_hub::refusal why{};
    auto s = hub.subscribe("acme", "n1", "10.0.0.1", asio::make_strand(ioc), &why);
    BOOST_TEST_REQUIRE(s != nullptr);
    publishing_writer w(hub);
    s->attach(&w);
    // Parked in next(), as a stream's coroutine is between writes: the job
    // writes to the socket itself.
    std::optional<subscription::state> ended;
    asio::co_spawn(ioc, s->next(10s),
                   [&](const std::exception_ptr&, subscription::batch b) { ended = b.st; });
    tether::test::pump_for(ioc, 20ms);
    hub.publish(event_record{1, "acme", "config-updated", "{}"});
    BOOST_TEST(tether::test::poll_until(
                   ioc, [&] { return w.got.find("id: 2\n") != std::string::npos; }, 5s),
               w.got);
    BOOST_TEST(w.got.find("id: 1\n") < w.got.find("id: 2\n"));
    s->end();
    BOOST_TEST(tether::test::poll_until(
        ioc, [&] { return ended.has_value(); }, 5s));
    s->attach(nullptr);
}

BOOST_AUTO_TEST_CASE(event_format_splits_multiline_data)
{
    BOOST_TEST(tether::gateway::format_event({7, "acme", "x", "a\nb"}) ==
               "id: 7\nevent: x\ndata: a\ndata: b\n\n");
}

BOOST_AUTO_TEST_SUITE_END()
