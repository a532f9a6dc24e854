#include "base/log.hpp"

#include "base/secret.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value_from.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace tlog = tether::log;

BOOST_AUTO_TEST_SUITE(log_suite)

BOOST_AUTO_TEST_CASE(json_lines_carry_event_level_and_fields)
{
    const auto line = tlog::render(tlog::format::json, "2026-11-22T10:00:00.000Z", tlog::level::warn,
                                   "hb.failed", {{"reason", "timeout"}, {"attempt", 3}});
    const auto v = boost::json::parse(line).as_object();
    BOOST_TEST(v.at("event").as_string() == "hb.failed");
    BOOST_TEST(v.at("level").as_string() == "warn");
    BOOST_TEST(v.at("ts").as_string() == "2026-11-22T10:00:00.000Z");
    BOOST_TEST(v.at("reason").as_string() == "timeout");
    BOOST_TEST(v.at("attempt").as_int64() == 3);
}

BOOST_AUTO_TEST_CASE(text_quotes_values_that_could_forge_fields)
{
    const auto line = tlog::render(tlog::format::text, "T", tlog::level::info, "x",
                                   {{"plain", "abc"}, {"spaced", "a b=c\nlevel=error"}});
    BOOST_TEST(line == R"(T info  x plain=abc spaced="a b=c\nlevel=error")");
}

BOOST_AUTO_TEST_CASE(secrets_are_redacted_in_both_formats)
{
    const tether::secret token{"s3cr3t-token"};
    std::vector<std::string> lines;
    for (const auto fmt : {tlog::format::text, tlog::format::json}) {
        tlog::logger lg(tlog::level::debug, fmt, [&](std::string_view l) { lines.emplace_back(l); });
        lg.info("session.refreshed", {{"token", boost::json::value_from(token)}});
    }
    BOOST_TEST_REQUIRE(lines.size() == 2u);
    for (const auto& l : lines) {
        BOOST_TEST(l.find("s3cr3t") == std::string::npos, l);
        BOOST_TEST(l.find("[redacted]") != std::string::npos, l);
    }
}

BOOST_AUTO_TEST_CASE(a_stderr_nobody_reads_drops_lines_instead_of_blocking_and_says_so)
{
    // fd 2 becomes a full pipe for the length of the test.
    int fds[2];
    BOOST_TEST_REQUIRE(::pipe(fds) == 0);
    (void)::fcntl(fds[1], F_SETPIPE_SZ, 4096);
    (void)::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    const std::string filler(4096, 'x');
    while (::write(fds[1], filler.data(), filler.size()) > 0) {}
    (void)::fcntl(fds[1], F_SETFL, 0);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    std::uint64_t dropped = 0;
    {
        auto out = std::make_shared<tlog::background_stderr>(tlog::format::json, 1000);
        tlog::logger log(tlog::level::info, tlog::format::json, out);
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 100; ++i) log.info("line", {{"i", i}});
        // 100 lines against a writer stuck in write(2): none of them waited.
        BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500)));
        dropped = out->dropped();
        BOOST_TEST(dropped > 50u);
        // stderr moves again: what was queued, then how much was lost.
        std::string got;
        char buf[65536];
        (void)::fcntl(fds[0], F_SETFL, O_NONBLOCK);
        for (int i = 0; i < 50 && got.find("log.dropped") == std::string::npos; ++i) {
            const auto n = ::read(fds[0], buf, sizeof buf);
            if (n > 0) got.append(buf, static_cast<std::size_t>(n));
            log.info("after");  // wakes the writer to report
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        BOOST_TEST(got.find("\"event\":\"log.dropped\"") != std::string::npos);
        BOOST_TEST(out->flush(std::chrono::seconds(2)));
    }
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(fds[0]);
    ::close(fds[1]);
}

BOOST_AUTO_TEST_CASE(level_filter)
{
    int n = 0;
    tlog::logger lg(tlog::level::warn, tlog::format::json, [&](std::string_view) { ++n; });
    lg.debug("a");
    lg.info("b");
    lg.warn("c");
    lg.error("d");
    BOOST_TEST(n == 2);
}

BOOST_AUTO_TEST_CASE(parse_names)
{
    BOOST_TEST((tlog::parse_level("warning") == tlog::level::warn));
    BOOST_TEST(!tlog::parse_level("loud").has_value());
    BOOST_TEST((tlog::parse_format("json") == tlog::format::json));
    BOOST_TEST(!tlog::parse_format("xml").has_value());
}

namespace {

/// This process's threads, each with whether it blocks SIGTERM (from
/// /proc/self/task/*/status).
std::map<std::string, bool> threads_blocking_sigterm()
{
    std::map<std::string, bool> out;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream in(t.path() / "status");
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("SigBlk:", 0) != 0) continue;
            const auto mask = std::stoull(line.substr(7), nullptr, 16);
            out[t.path().filename().string()] = (mask & (1ULL << (SIGTERM - 1))) != 0;
        }
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_writer_thread_takes_no_process_signals)
{
    // A writer thread with signals open could take a SIGTERM meant for a
    // handler that is not installed yet (`tether exec` blocks them until
    // then) and kill the process with the default action. Writers of
    // earlier cases may still be winding down: only the new thread counts.
    const auto before = threads_blocking_sigterm();
    {
        tether::log::background_stderr writer(tether::log::format::json);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::size_t fresh = 0;
        for (const auto& [tid, blocks] : threads_blocking_sigterm()) {
            if (before.contains(tid)) continue;
            ++fresh;
            BOOST_TEST(blocks, "thread " << tid << " takes SIGTERM");
        }
        BOOST_TEST(fresh == 1u);
    }
}

BOOST_AUTO_TEST_SUITE_END()
