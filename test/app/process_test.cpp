// The binaries as an operator meets them: real processes, real signals.
#include "base/utf8.hpp"
#include "support/child_process.hpp"
#include "support/raw_http.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>

using namespace std::chrono_literals;
using tether::test::binary;
using tether::test::child_process;
using tether::test::temp_dir;

using tether::test::contains;

BOOST_AUTO_TEST_SUITE(process_suite)

BOOST_AUTO_TEST_CASE(help_prints_usage_and_exits_zero)
{
    for (const char* exe : {"tether", "tether-gateway"}) {
        const auto r = tether::test::run(binary(exe), {"--help"});
        BOOST_TEST(r.status == 0);
        BOOST_TEST(contains(r.out, std::string("Usage: ") + exe), r.out);
    }
    for (const char* sub : {"enroll", "run", "status", "exec", "sse-decode"}) {
        const auto r = tether::test::run(binary("tether"), {sub, "--help"});
        BOOST_TEST(r.status == 0, sub);
        BOOST_TEST(contains(r.out, std::string("tether ") + sub), r.out);
    }
    const auto admin = tether::test::run(binary("tether-gateway"), {"admin", "--help"});
    BOOST_TEST(admin.status == 0);
    BOOST_TEST(contains(admin.out, "create-enrollment-code"), admin.out);
    const auto serve = tether::test::run(binary("tether-gateway"), {"serve", "--help"});
    BOOST_TEST(contains(serve.out, "TETHER_DATA_DIR"), serve.out);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_two)
{
    const auto none = tether::test::run(binary("tether"), {});
    BOOST_TEST(none.status == 2);
    const auto unknown = tether::test::run(binary("tether"), {"frobnicate"});
    BOOST_TEST(unknown.status == 2);
    BOOST_TEST(contains(unknown.err, "frobnicate"), unknown.err);
    const auto bad_flag = tether::test::run(binary("tether"), {"run", "--bogus"});
    BOOST_TEST(bad_flag.status == 2);
    BOOST_TEST(contains(bad_flag.err, "--bogus"), bad_flag.err);
    const auto bad_level = tether::test::run(binary("tether"), {"run", "--log-level", "loud"});
    BOOST_TEST(bad_level.status == 2);
    const auto plain_public = tether::test::run(binary("tether-gateway"), {"serve", "--listen", "0.0.0.0:0"});
    BOOST_TEST(plain_public.status == 2);
    BOOST_TEST(contains(plain_public.err, "refusing plain HTTP"), plain_public.err);
}

BOOST_AUTO_TEST_CASE(durations_out_of_range_are_usage_errors_before_anything_starts)
{
    // 10000000h overflowed the clock's nanoseconds in the drain deadline:
    // the gateway's drain ran out the moment it began, and it exited 1.
    temp_dir dir;
    const auto data = dir.path() / "data";
    const auto drain = tether::test::run(
        binary("tether-gateway"),
        {"serve", "--listen", "127.0.0.1:0", "--data-dir", data.string(), "--drain-timeout", "10000000h"});
    BOOST_TEST(drain.status == 2);
    BOOST_TEST(contains(drain.err, "--drain-timeout: '10000000h' must be from 0s to 720h"), drain.err);
    BOOST_TEST(!std::filesystem::exists(data), "nothing is created");
    // Set in a manifest's environment, the message names the variable.
    child_process::options env;
    env.env_extra = {"TETHER_DRAIN_TIMEOUT=10000000h"};
    const auto from_env = tether::test::run(
        binary("tether-gateway"), {"serve", "--listen", "127.0.0.1:0", "--data-dir", data.string()}, env);
    BOOST_TEST(from_env.status == 2);
    BOOST_TEST(contains(from_env.err, "TETHER_DRAIN_TIMEOUT: '10000000h' must be from 0s to 720h"),
               from_env.err);

    // Zero would switch PostgreSQL's statement_timeout off; above 24.8 days
    // the server refuses the SET on every new connection.
    for (const char* bad : {"0s", "99ms", "1441m", "600h"}) {
        const auto db = tether::test::run(binary("tether-gateway"),
                                          {"serve", "--listen", "127.0.0.1:0", "--data-dir", data.string(),
                                           "--database", "host=/nonexistent dbname=x", "--db-timeout", bad});
        BOOST_TEST(db.status == 2, bad);
        BOOST_TEST(contains(db.err, "--db-timeout"), db.err);
        BOOST_TEST(!std::filesystem::exists(data), "nothing is created");
    }

    // The gateway reads a TTL of 0 seconds as its default hour: "500ms"
    // made a code that lived an hour. Refused before any call is made.
    const auto token = dir.path() / "admin.token";
    tether::test::write_file(token, "unused\n");
    for (const char* bad : {"500ms", "0s", "1500ms", "721h"}) {
        const auto ttl =
            tether::test::run(binary("tether-gateway"),
                              {"admin", "--server", "http://127.0.0.1:1", "--admin-token-file",
                               token.string(), "create-enrollment-code", "--org", "acme", "--ttl", bad});
        BOOST_TEST(ttl.status == 2, bad);
        BOOST_TEST(contains(ttl.err, "--ttl"), ttl.err);
        BOOST_TEST(!contains(ttl.err, "127.0.0.1:1"), ttl.err);
    }

    const auto probe = tether::test::run(
        binary("tether"), {"probe", "--health-listen", "127.0.0.1:1", "--probe-timeout", "0s", "/livez"});
    BOOST_TEST(probe.status == 2);
    BOOST_TEST(contains(probe.err, "--probe-timeout: '0s' must be from 100ms to 720h"), probe.err);
}

BOOST_AUTO_TEST_CASE(a_ca_file_that_cannot_be_used_is_refused_even_for_plain_http)
{
    // Unused with an http:// server, a wrong --ca-file went unnoticed until
    // the day the server moved to https.
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto missing = dir.path() / "missing.pem";
    const auto enroll =
        tether::test::run(binary("tether"), {"enroll", "--server", "http://127.0.0.1:1", "--code", "unused",
                                             "--state-dir", state.string(), "--ca-file", missing.string()});
    BOOST_TEST(enroll.status == 2);
    BOOST_TEST(contains(enroll.err, "cannot load CA file " + missing.string()), enroll.err);
    BOOST_TEST(!std::filesystem::exists(state), "nothing is created");

    const auto junk = dir.path() / "junk.pem";
    tether::test::write_file(junk, "not a certificate\n");
    const auto token = dir.path() / "admin.token";
    tether::test::write_private_file(token, "unused-but-long-enough\n");
    const auto admin = tether::test::run(binary("tether-gateway"),
                                         {"admin", "--server", "http://127.0.0.1:1", "--admin-token-file",
                                          token.string(), "--ca-file", junk.string(), "nodes"});
    BOOST_TEST(admin.status == 2);
    BOOST_TEST(contains(admin.err, "cannot load CA file " + junk.string()), admin.err);
}

BOOST_AUTO_TEST_CASE(serve_with_tls_files_it_cannot_use_exits_2_and_creates_nothing)
{
    temp_dir dir;
    const auto data = dir.path() / "data";
    const auto junk = dir.path() / "junk.pem";
    tether::test::write_file(junk, "not a key\n");
    for (const auto& files : {std::pair{dir.path() / "missing.pem", junk}, std::pair{junk, junk}}) {
        const auto r =
            tether::test::run(binary("tether-gateway"),
                              {"serve", "--listen", "127.0.0.1:0", "--data-dir", data.string(), "--tls-cert",
                               files.first.string(), "--tls-key", files.second.string()});
        BOOST_TEST(r.status == 2, r.err);
        BOOST_TEST(contains(r.err, files.first.string()), r.err);
        BOOST_TEST(!std::filesystem::exists(data), "nothing is created: no data directory, no admin token");
    }
}

BOOST_AUTO_TEST_CASE(publish_config_refuses_input_that_cannot_be_a_config_before_reading_it_all)
{
    // It read its input whole first: /dev/zero grew until the kernel
    // stopped it, and a directory was "not a JSON object".
    temp_dir dir;
    const auto token = dir.path() / "admin.token";
    tether::test::write_private_file(token, "t0123456789abcdefghijklmnopqrstu\n");
    const auto publish = [&](const std::string& input, child_process::options in = {}) {
        return tether::test::run(binary("tether-gateway"),
                                 {"admin", "--server", "http://127.0.0.1:1", "--admin-token-file",
                                  token.string(), "publish-config", "--org", "acme", input},
                                 std::move(in), 20s);
    };
    const auto zeros = publish("/dev/zero");
    BOOST_TEST(zeros.status == 2, zeros.err);
    BOOST_TEST(contains(zeros.err, "/dev/zero: larger than 1 MiB"), zeros.err);
    child_process::options big;
    big.stdin_data = "{\"k\":\"" + std::string(std::size_t{1} << 20, 'x') + "\"}";
    const auto piped = publish("-", big);
    BOOST_TEST(piped.status == 2, piped.err);
    BOOST_TEST(contains(piped.err, "-: larger than 1 MiB"), piped.err);
    const auto folder = publish(dir.path().string());
    BOOST_TEST(folder.status == 2, folder.err);
    BOOST_TEST(contains(folder.err, "a directory"), folder.err);
    const auto missing = publish((dir.path() / "nope.json").string());
    BOOST_TEST(missing.status == 2, missing.err);
    BOOST_TEST(contains(missing.err, "No such file or directory"), missing.err);
    // Within the bound, the input goes to the gateway (none listens here).
    child_process::options small;
    small.stdin_data = R"({"flags":{"a":true}})";
    const auto sent = publish("-", small);
    BOOST_TEST(sent.status == 1, sent.err);
    BOOST_TEST(contains(sent.err, "unavailable"), sent.err);
}

BOOST_AUTO_TEST_CASE(what_a_broken_server_answers_is_refused_by_name_and_never_printed_raw)
{
    // A broken gateway, a proxy's page or another program on the port:
    // the admin CLI printed a code with terminal escapes as it came and ended
    // in Boost.JSON's words without one, `tether status` ended in "out of
    // range" on a /status that was not an agent's, and enroll kept any
    // identity it was given.
    using tether::test::canned_http_server;
    temp_dir dir;
    const auto token = dir.path() / "admin.token";
    tether::test::write_private_file(token, "unused-but-long-enough\n");
    const auto admin = [&](const canned_http_server& gw, std::vector<std::string> args,
                           child_process::options in = {}) {
        args.insert(args.begin(), {"admin", "--server", gw.url(), "--admin-token-file", token.string()});
        return tether::test::run(binary("tether-gateway"), args, std::move(in), 20s);
    };
    const std::vector<std::string> code_answers{R"({"code":"\u001b]0;owned\u0007abc"})", R"({})",
                                                R"({"code":7.5})", R"({"code":"two words"})"};
    for (const auto& body : code_answers) {
        canned_http_server gw(canned_http_server::json_answer(body));
        const auto r = admin(gw, {"create-enrollment-code", "--org", "acme"});
        BOOST_TEST(r.status == 1, body);
        BOOST_TEST(contains(r.err, "CreateEnrollmentCode: the answer has no usable code"), r.err);
        BOOST_TEST(r.out.empty(), r.out);
        BOOST_TEST(gw.requests() == 1, body);
    }
    {
        canned_http_server gw(canned_http_server::json_answer(R"({"code":"Abc-123_x"})"));
        const auto r = admin(gw, {"create-enrollment-code", "--org", "acme"});
        BOOST_TEST(r.status == 0, r.err);
        BOOST_TEST(r.out == "Abc-123_x\n");
    }
    child_process::options config;
    config.stdin_data = R"({"flags":{"a":true}})";
    for (const std::string body : {R"({"configUpdatedAt":{"a":1}})", R"({"configUpdatedAt":"1\r\n2"})"}) {
        canned_http_server gw(canned_http_server::json_answer(body));
        const auto r = admin(gw, {"publish-config", "--org", "acme", "-"}, config);
        BOOST_TEST(r.status == 1, body);
        BOOST_TEST(contains(r.err, "PublishConfig: the answer has no usable configUpdatedAt"), r.err);
        BOOST_TEST(r.out.empty(), r.out);
    }
    for (const std::string body : {R"({"configUpdatedAt":"17"})", R"({"configUpdatedAt":17})"}) {
        canned_http_server gw(canned_http_server::json_answer(body));
        const auto r = admin(gw, {"publish-config", "--org", "acme", "-"}, config);
        BOOST_TEST(r.status == 0, r.err);
        BOOST_TEST(r.out == "17\n");
    }
    {
        // JSON for a script is still printed to a terminal now and then:
        // what the serializer leaves raw (DEL, C1) is escaped, the value kept.
        canned_http_server gw(canned_http_server::json_answer(
            R"({"nodes":[{"nodeId":"n1","nodeName":"a\u009b[2Jb\u007f"}],"configUpdatedAt":"5",)"
            R"("config":{"k":"\u009b[31m"}})"));
        for (const auto& cmd : {std::vector<std::string>{"nodes", "--json"},
                                std::vector<std::string>{"rollout", "--org", "acme", "--json"},
                                std::vector<std::string>{"get-config", "--org", "acme"},
                                std::vector<std::string>{"get-config", "--org", "acme", "--json"}}) {
            const auto r = admin(gw, cmd);
            BOOST_TEST(r.status == 0, r.err);
            BOOST_TEST(!tether::has_control_characters(r.out.substr(0, r.out.size() - 1)), r.out);
            BOOST_TEST(contains(r.out, "\\u009b["), r.out);
        }
    }
    {
        // A refusal's text is the server's too.
        canned_http_server gw(canned_http_server::json_answer(
            R"({"code":"invalid_argument","message":"\u001b[2Jwiped"})", 400));
        const auto r = admin(gw, {"revoke", "node-1"});
        BOOST_TEST(r.status == 2, r.err);
        BOOST_TEST(contains(r.err, "\\x1b[2Jwiped"), r.err);
        BOOST_TEST(!contains(r.err, "\x1b"), r.err);
    }

    // Enroll: an identity that cannot be kept is refused before anything
    // is written.
    const std::vector<std::string> identities{
        R"({"nodeId":"n\nx","orgId":"acme","apiKey":"k"})", R"({"nodeId":"n","orgId":"","apiKey":"k"})",
        R"({"nodeId":"n","orgId":"acme","apiKey":")" + std::string(5000, 'k') + R"("})",
        R"({"nodeId":")" + std::string(300, 'n') + R"(","orgId":"acme","apiKey":"k"})"};
    const std::vector<std::string> fields{"nodeId: 1-256", "orgId: 1-256", "apiKey: 1-4096", "nodeId: 1-256"};
    for (std::size_t i = 0; i < identities.size(); ++i) {
        canned_http_server gw(canned_http_server::json_answer(identities[i]));
        const auto state = dir.path() / ("state" + std::to_string(i));
        child_process::options code;
        code.env_extra = {"TETHER_CODE=the-code"};
        const auto r = tether::test::run(
            binary("tether"),
            {"enroll", "--server", gw.url(), "--state-dir", state.string(), "--log-format", "json"}, code,
            20s);
        BOOST_TEST(r.status == 1, r.err);
        BOOST_TEST(contains(r.err, "Enroll answered an identity this agent cannot use (" + fields[i]), r.err);
        BOOST_TEST(!std::filesystem::exists(state / "state.json"), identities[i]);
    }

    // status --health-listen: something else on the port is named, not a crash.
    const auto state = dir.path() / "enrolled";
    std::filesystem::create_directories(state);
    std::filesystem::permissions(state, std::filesystem::perms::owner_all);
    tether::test::write_private_file(
        state / "state.json",
        R"({"serverUrl":"http://127.0.0.1:1","nodeId":"node-\u001b[31mx","orgId":"acme","apiKey":"k"})");
    for (const std::string body : {R"({})", R"({"heartbeatsSent":"many","heartbeatsFailed":0})"}) {
        canned_http_server other(canned_http_server::json_answer(body));
        const auto addr = other.url().substr(std::string("http://").size());
        const auto text = tether::test::run(
            binary("tether"), {"status", "--state-dir", state.string(), "--health-listen", addr});
        BOOST_TEST(text.status == 0, text.err);
        BOOST_TEST(contains(text.out, "answered, but not as a tether agent"), text.out);
        BOOST_TEST(contains(text.out, "node-\\x1b[31mx"), text.out);
        const auto as_json = tether::test::run(
            binary("tether"), {"status", "--state-dir", state.string(), "--health-listen", addr, "--json"});
        BOOST_TEST(as_json.status == 0, as_json.err);
        BOOST_TEST(contains(as_json.out, R"("health":"not a tether agent")"), as_json.out);
        BOOST_TEST(!contains(as_json.out, "heartbeatsSent"), as_json.out);
    }
}

BOOST_AUTO_TEST_CASE(a_database_url_never_stays_on_the_command_line)
{
    // A connection string may carry a password, and every user of the
    // machine reads a command line (ps, /proc/PID/cmdline): given there, it
    // is blanked once read and a warning names the way that keeps it off. A
    // PostgreSQL that never answers holds the start open long enough to look.
    const tether::test::silent_listener silent;
    const std::string password = "Zq8-the-password-Zq8";
    const std::string url =
        "postgresql://tether:" + password + "@127.0.0.1:" + std::to_string(silent.port()) + "/tether";
    temp_dir dir;
    const std::vector<std::vector<std::string>> forms{
        {"serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().string(), "--database", url},
        {"serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().string(), "--database=" + url},
        {"migrate", "--database", url}};
    for (auto args : forms) {
        const auto what = args.front() + " " + args[args.size() - 2];
        args.insert(args.end(), {"--db-timeout", "30s", "--log-format", "json"});
        child_process gateway(binary("tether-gateway"), args);
        BOOST_TEST_REQUIRE(
            gateway.wait_output(
                [](const std::string& e) { return contains(e, "gateway.database_on_command_line"); }, 10s),
            gateway.err_when_printed());
        const auto cmdline = tether::test::read_file("/proc/" + std::to_string(gateway.pid()) + "/cmdline");
        BOOST_TEST(!contains(cmdline, password), what);
        BOOST_TEST(!contains(cmdline, "127.0.0.1:" + std::to_string(silent.port())), what);
        BOOST_TEST(contains(cmdline, "--db-timeout"), "nothing else was touched: " << what);
        BOOST_TEST(!contains(gateway.err(), password), gateway.err_when_printed());
    }

    // Through TETHER_DATABASE there is nothing to blank and nothing to warn of.
    child_process::options env_only;
    env_only.env_extra = {"TETHER_DATABASE=" + url};
    child_process quiet(binary("tether-gateway"), {"migrate", "--db-timeout", "1s", "--log-format", "json"},
                        env_only);
    const auto status = quiet.wait_for(20s);
    BOOST_TEST_REQUIRE(status.has_value(), quiet.err_when_printed());
    BOOST_TEST(*status != 0, quiet.err_when_printed());
    BOOST_TEST(!contains(quiet.err(), "database_on_command_line"), quiet.err_when_printed());
    BOOST_TEST(!contains(quiet.err(), password), quiet.err_when_printed());
}

BOOST_AUTO_TEST_CASE(run_without_state_names_the_file_and_the_enroll_command)
{
    temp_dir dir;
    const auto state = dir.path() / "state";
    const auto r = tether::test::run(binary("tether"), {"run", "--state-dir", state.string()});
    BOOST_TEST(r.status == 2);
    BOOST_TEST(contains(r.err, (state / "state.json").string()), r.err);
    BOOST_TEST(contains(r.err, "tether enroll"), r.err);
    // The enroll command it suggests keeps the code off the command line.
    BOOST_TEST(contains(r.err, "--code-file FILE"), r.err);
    BOOST_TEST(!contains(r.err, "--code CODE"), r.err);
    BOOST_TEST(!std::filesystem::exists(state), "nothing is created when there is no state");

    // The same through the environment.
    child_process::options env_only;
    env_only.env_extra = {"TETHER_STATE_DIR=" + state.string()};
    const auto e = tether::test::run(binary("tether"), {"run"}, env_only);
    BOOST_TEST(e.status == 2);
    BOOST_TEST(contains(e.err, (state / "state.json").string()), e.err);
}

BOOST_AUTO_TEST_CASE(sigterm_to_gateway_serve_exits_zero_within_two_seconds)
{
    temp_dir dir;
    child_process gw(binary("tether-gateway"), {"serve", "--listen", "127.0.0.1:0", "--data-dir",
                                                (dir.path() / "data").string(), "--log-format", "json"});
    BOOST_TEST_REQUIRE(
        gw.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        gw.err_when_printed());
    const auto sent = std::chrono::steady_clock::now();
    gw.signal(SIGTERM);
    const auto status = gw.wait_for(2s);
    BOOST_TEST_REQUIRE(status.has_value(), "gateway still running 2 s after SIGTERM:\n"
                                               << gw.err_when_printed());
    BOOST_TEST(*status == 0, gw.err_when_printed());
    BOOST_TEST((std::chrono::steady_clock::now() - sent) < 2s);
    BOOST_TEST(contains(gw.err(), "supervisor.signal"), gw.err_when_printed());
}

BOOST_AUTO_TEST_CASE(sigint_works_like_sigterm)
{
    temp_dir dir;
    child_process gw(binary("tether-gateway"),
                     {"serve", "--listen", "127.0.0.1:0", "--data-dir", (dir.path() / "data").string()});
    BOOST_TEST_REQUIRE(
        gw.wait_output([](const std::string& e) { return contains(e, "gateway.listening"); }, 20s),
        gw.err_when_printed());
    gw.signal(SIGINT);
    const auto status = gw.wait_for(2s);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(*status == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(sse_decode_suite)

BOOST_AUTO_TEST_CASE(decodes_a_captured_stream_into_json_lines)
{
    child_process::options in;
    in.stdin_data = std::string(
        "\xEF\xBB\xBF: hi\r\nid: 7\r\nevent: config-updated\r\ndata: {\"configUpdatedAt\": 5}\r\n\r\n"
        "data: a\ndata: b\n\nretry: 2500\ndata: unterminated");
    const auto r = tether::test::run(binary("tether"), {"sse-decode"}, in);
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.out ==
                   "{\"type\":\"config-updated\",\"data\":\"{\\\"configUpdatedAt\\\": 5}\",\"id\":\"7\"}\n"
                   "{\"type\":\"message\",\"data\":\"a\\nb\",\"id\":\"7\"}\n"
                   "{\"retry\":2500}\n",
               r.out);
}

BOOST_AUTO_TEST_CASE(oversized_event_is_a_clear_error)
{
    child_process::options in;
    in.stdin_data = "data: " + std::string(100, 'x') + "\n\n";
    const auto r = tether::test::run(binary("tether"), {"sse-decode", "--max-event-size", "16"}, in);
    BOOST_TEST(r.status == 1);
    BOOST_TEST(contains(r.err, "maximum event size"), r.err);
}

BOOST_AUTO_TEST_SUITE_END()
