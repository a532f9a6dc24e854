#include "app/common/cli.hpp"

#include "app/common/run_program.hpp"

#include <boost/test/unit_test.hpp>

#include <functional>
#include <map>

namespace cli = tether::app::cli;

namespace {

const cli::command cmd{
    "run",
    "test command",
    {{"state-dir", "DIR", "where"}, {"realtime-url", "URL", "candidates", {}, true}, {"force", "", "switch"}},
    {}};

cli::env_lookup env_of(std::map<std::string, std::string> m)
{
    return [m = std::move(m)](std::string_view k) -> std::optional<std::string> {
        const auto it = m.find(std::string(k));
        if (it == m.end()) return std::nullopt;
        return it->second;
    };
}

cli::arguments parse(std::vector<std::string> args, std::map<std::string, std::string> env = {})
{
    return cli::parse(cmd, args, env_of(std::move(env)));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli_suite)

BOOST_AUTO_TEST_CASE(flag_forms)
{
    auto a = parse({"--state-dir", "/a", "--force"});
    BOOST_TEST(*a.value("state-dir") == "/a");
    BOOST_TEST(a.enabled("force"));
    auto b = parse({"--state-dir=/b", "--force=false"});
    BOOST_TEST(*b.value("state-dir") == "/b");
    BOOST_TEST(!b.enabled("force"));
}

BOOST_AUTO_TEST_CASE(environment_fills_unset_flags_and_the_flag_wins)
{
    auto a = parse({}, {{"TETHER_STATE_DIR", "/env"}, {"TETHER_FORCE", "1"}});
    BOOST_TEST(*a.value("state-dir") == "/env");
    BOOST_TEST(a.origin("state-dir") == "TETHER_STATE_DIR");
    BOOST_TEST(a.enabled("force"));
    auto b = parse({"--state-dir", "/flag"}, {{"TETHER_STATE_DIR", "/env"}});
    BOOST_TEST(*b.value("state-dir") == "/flag");
    BOOST_TEST(b.origin("state-dir") == "--state-dir");
}

BOOST_AUTO_TEST_CASE(repeatable_flags_and_comma_lists)
{
    auto a = parse({"--realtime-url", "https://a", "--realtime-url", "https://b"});
    BOOST_TEST(a.values("realtime-url").size() == 2u);
    auto b = parse({}, {{"TETHER_REALTIME_URL", "https://a,https://b,"}});
    BOOST_TEST((b.values("realtime-url") == std::vector<std::string>{"https://a", "https://b"}));
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_usage_error_that_names_it)
{
    auto expect = [](std::vector<std::string> args, std::map<std::string, std::string> env,
                     std::string needle) {
        try {
            (void)parse(std::move(args), std::move(env));
            BOOST_ERROR("no usage_error for " + needle);
        } catch (const cli::usage_error& e) {
            BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
        }
    };
    expect({"--nope"}, {}, "--nope");
    expect({"--state-dir"}, {}, "needs a value");
    expect({"stray"}, {}, "stray");
    expect({}, {{"TETHER_FORCE", "maybe"}}, "TETHER_FORCE");
    expect({"--force=maybe"}, {}, "--force");
}

BOOST_AUTO_TEST_CASE(help_lists_flags_with_their_variables)
{
    const auto text = cli::render_help("tether", cmd);
    BOOST_TEST(text.find("--state-dir DIR") != std::string::npos);
    BOOST_TEST(text.find("TETHER_STATE_DIR") != std::string::npos);
    BOOST_TEST(text.find("TETHER_LOG_LEVEL") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(durations)
{
    using tether::app::cli::parse_duration;
    using namespace std::chrono_literals;
    BOOST_TEST(parse_duration("30", "x").count() == 30000);
    BOOST_TEST(parse_duration("250ms", "x").count() == 250);
    BOOST_TEST(parse_duration("2m", "x").count() == 120000);
    BOOST_CHECK_THROW(parse_duration("2 m", "x"), cli::usage_error);
    BOOST_CHECK_THROW(parse_duration("-1s", "x"), cli::usage_error);
    BOOST_CHECK_THROW(parse_duration("", "x"), cli::usage_error);
    // Every value is bounded: the default ceiling is 30 days.
    BOOST_TEST(parse_duration("720h", "x").count() == 720LL * 3600 * 1000);
    BOOST_CHECK_THROW(parse_duration("721h", "x"), cli::usage_error);
    BOOST_CHECK_THROW(parse_duration("10000000h", "x"), cli::usage_error);
    BOOST_TEST(parse_duration("0s", "x").count() == 0);
    const cli::duration_range r{100ms, 24h};
    BOOST_TEST(parse_duration("100ms", "x", r).count() == 100);
    BOOST_TEST(parse_duration("24h", "x", r).count() == 24LL * 3600 * 1000);
    try {
        (void)parse_duration("99ms", "--db-timeout", r);
        BOOST_ERROR("99ms was taken");
    } catch (const cli::usage_error& e) {
        BOOST_TEST(std::string(e.what()) == "--db-timeout: '99ms' must be from 100ms to 24h");
    }
    BOOST_CHECK_THROW(parse_duration("1441m", "x", r), cli::usage_error);
    BOOST_TEST(cli::at_least(1s).lo.count() == 1000);
    BOOST_TEST((cli::at_least(1s).hi == cli::duration_range::ceiling));
}

BOOST_AUTO_TEST_CASE(durations_and_counts_read_from_arguments_name_where_they_came_from)
{
    using namespace std::chrono_literals;
    const auto message = [](const std::function<void()>& f) {
        try {
            f();
        } catch (const cli::usage_error& e) {
            return std::string(e.what());
        }
        return std::string("nothing thrown");
    };
    BOOST_TEST(!parse({}).duration("state-dir").has_value());
    BOOST_TEST(!parse({}).count("state-dir", 1, 5).has_value());
    BOOST_TEST(parse({"--state-dir", "9s"}).duration("state-dir").value().count() == 9000);
    BOOST_TEST(parse({}, {{"TETHER_STATE_DIR", "4"}}).count("state-dir", 1, 5).value() == 4U);
    BOOST_TEST(message([] {
                   (void)parse({}, {{"TETHER_STATE_DIR", "0"}}).count("state-dir", 1, 5);
               }) == "TETHER_STATE_DIR: '0' is not a whole number from 1 to 5");
    BOOST_TEST(message([] {
                   (void)parse({"--state-dir", "99ms"}).duration("state-dir", {100ms, 24h});
               }) == "--state-dir: '99ms' must be from 100ms to 24h");
    BOOST_TEST(message([] {
                   (void)parse({}, {{"TETHER_STATE_DIR", "721h"}}).duration("state-dir");
               }) == "TETHER_STATE_DIR: '721h' must be from 0s to 720h");
}

BOOST_AUTO_TEST_CASE(durations_print_in_the_largest_whole_unit)
{
    using tether::app::cli::format_duration;
    using namespace std::chrono_literals;
    BOOST_TEST(format_duration(0ms) == "0s");
    BOOST_TEST(format_duration(250ms) == "250ms");
    BOOST_TEST(format_duration(1500ms) == "1500ms");
    BOOST_TEST(format_duration(5s) == "5s");
    BOOST_TEST(format_duration(90s) == "90s");
    BOOST_TEST(format_duration(2min) == "2m");
    BOOST_TEST(format_duration(720h) == "720h");
}

BOOST_AUTO_TEST_CASE(a_secret_flag_is_blanked_in_argv_up_to_a_double_dash)
{
    // Nested as `admin` nests its commands: a child's secret flags count.
    tether::app::subcommand child{
        {"inner", "nested", {{.name = "token", .value_name = "T", .help = "a secret", .secret = true}}, {}},
        {}};
    const std::vector<tether::app::subcommand> cmds{
        {{"outer", "top", {{.name = "code", .value_name = "C", .help = "a secret", .secret = true}}, {}},
         {},
         {child}}};
    std::vector<std::string> text{"tether", "outer",   "--code", "abc", "--code=defg", "--token",
                                  "hi",     "--codex", "open",   "--",  "--code",      "child"};
    std::vector<char*> argv;
    for (auto& t : text) argv.push_back(t.data());
    tether::app::blank_secret_arguments(cmds, static_cast<int>(argv.size()), argv.data());
    const std::vector<std::string> seen(argv.begin(), argv.end());
    const std::vector<std::string> want{"tether", "outer",   "--code", "xxx", "--code=xxxx", "--token",
                                        "xx",     "--codex", "open",   "--",  "--code",      "child"};
    BOOST_TEST(seen == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
