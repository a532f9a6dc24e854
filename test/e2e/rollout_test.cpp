// `tether-gateway admin rollout` against real agents (issue 18): three
// `tether run`s with --config-out, one held back because its workload's
// directory refuses the write, so the gate times out naming it, then
// passes once that node catches up.
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

using namespace std::chrono_literals;
namespace t = tether::test;
using t::contains;
using clk = std::chrono::steady_clock;

namespace {

struct node {
    std::filesystem::path state;
    std::filesystem::path out;
    std::string id;
    std::unique_ptr<t::child_process> proc;
};

long long ms_since(clk::time_point start)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(clk::now() - start).count();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(rollout)

BOOST_AUTO_TEST_CASE(admin_rollout_wait_gates_on_every_online_node_and_names_the_one_behind)
{
    t::gateway_process gw;
    t::temp_dir dir;
    std::vector<node> fleet(3);
    for (std::size_t i = 0; i < fleet.size(); ++i) {
        auto& n = fleet[i];
        n.state = dir.path() / ("state" + std::to_string(i));
        n.out = dir.path() / ("out" + std::to_string(i));
        n.id = t::enroll(gw, n.state, "acme", "node" + std::to_string(i));
        n.proc = t::run_agent(n.state, {"--config-out", n.out.string()});
    }
    for (auto& n : fleet)
        BOOST_TEST_REQUIRE(n.proc->wait_output(
                               [](const std::string& e) {
                                   return contains(e, "heartbeat.ok") && contains(e, "sse.connected");
                               },
                               20s),
                           n.proc->err_when_printed());
    const auto tool = t::binary("tether-gateway");
    auto r = t::run(tool, gw.admin({"rollout", "--org", "acme"}));
    BOOST_TEST_REQUIRE(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "online 3  applied 3  behind 0  offline 0  revoked 0"), r.out);

    // Node 2's workload directory becomes a file: it cannot apply.
    auto& held = fleet[2];
    std::filesystem::remove_all(held.out);
    std::ofstream(held.out) << "not a directory\n";
    const auto at = gw.publish("acme", R"({"flags": {"rollout": true}})");

    const auto started = clk::now();
    r = t::run(tool, gw.admin({"rollout", "--org", "acme", "--wait", "4s"}));
    const auto timed_out_after = ms_since(started);
    BOOST_TEST(r.status == 1, r.out << r.err);
    BOOST_TEST(contains(r.err, "timed out: 1 online node(s) behind"), r.err);
    BOOST_TEST(contains(r.out, "online 3  applied 2  behind 1"), r.out);
    BOOST_TEST(contains(r.out, held.id), r.out);
    BOOST_TEST(!contains(r.out, fleet[0].id), r.out);
    BOOST_TEST(!contains(r.out, fleet[1].id), r.out);
    BOOST_TEST(contains(r.out, "config " + at), r.out);
    BOOST_TEST((timed_out_after >= 4000 && timed_out_after < 9000), timed_out_after << " ms");
    BOOST_TEST(
        held.proc->wait_output([](const std::string& e) { return contains(e, "config.render_failed"); }, 5s),
        held.proc->err_when_printed());

    // The two that could apply did so at once: the agent beats right after
    // a new version instead of an interval later.
    r = t::run(tool, gw.admin({"nodes", "--org", "acme"}));
    BOOST_TEST_REQUIRE(r.status == 0, r.err);
    for (const auto& line : t::lines_with(r.out, "node-")) {
        if (contains(line, held.id))
            BOOST_TEST(!contains(line, at), line);
        else
            BOOST_TEST(contains(line, at), line);
    }

    // Its directory back, the node renders on its next retry (5 s) and
    // beats: the gate passes while it waits, well before its timeout.
    std::filesystem::remove(held.out);
    std::filesystem::create_directory(held.out);
    const auto fixed = clk::now();
    r = t::run(tool, gw.admin({"rollout", "--org", "acme", "--wait", "30s"}));
    const auto passed_after = ms_since(fixed);
    BOOST_TEST(r.status == 0, r.out << r.err);
    BOOST_TEST(contains(r.out, "online 3  applied 3  behind 0"), r.out);
    BOOST_TEST(passed_after < 15000, passed_after << " ms");
    BOOST_TEST(std::filesystem::exists(held.out / "config.json"));
    std::cout << "rollout: gate timed out after " << timed_out_after << " ms naming the held node; passed "
              << passed_after << " ms after its directory came back\n";

    // --json, and bad input.
    r = t::run(tool, gw.admin({"rollout", "--org", "acme", "--json"}));
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "\"applied\":3"), r.out);
    r = t::run(tool, gw.admin({"rollout", "--org", "no such org", "--wait", "1s"}));
    BOOST_TEST(r.status == 2, r.out << r.err);
    BOOST_TEST(contains(r.err, "orgId"), r.err);
    r = t::run(tool, gw.admin({"rollout"}));
    BOOST_TEST(r.status == 2, r.err);
    r = t::run(tool, gw.admin({"rollout", "--org", "acme", "--wait", "soon"}));
    BOOST_TEST(r.status == 2, r.err);
}

BOOST_AUTO_TEST_CASE(get_config_and_publish_if_updated_at_never_undo_another_publish)
{
    // Read, edit, publish: a publish made in between (another operator, a
    // pipeline) was silently undone by the edit of the older version.
    t::gateway_process gw;
    const auto tool = t::binary("tether-gateway");
    const auto publish = [&](std::vector<std::string> extra, const std::string& doc) {
        std::vector<std::string> args{"publish-config", "--org", "acme"};
        args.insert(args.end(), extra.begin(), extra.end());
        args.emplace_back("-");
        t::child_process::options in;
        in.stdin_data = doc;
        return t::run(tool, gw.admin(args), std::move(in));
    };
    auto got = t::run(tool, gw.admin({"get-config", "--org", "acme"}));
    BOOST_TEST(got.status == 0, got.err);
    BOOST_TEST(got.out == "{}\n");
    BOOST_TEST(contains(got.err, "configUpdatedAt 0 (none published yet)"), got.err);

    const std::string first_doc = R"({"flags":{"a":true}})";
    auto first = publish({"--if-updated-at", "0"}, first_doc);
    BOOST_TEST_REQUIRE(first.status == 0, first.err);
    const std::string at1 = first.out.substr(0, first.out.find('\n'));
    // No node has enrolled in acme: said, since a misspelt org looks alike.
    BOOST_TEST(contains(first.err, "note: org acme has no enrolled node yet"), first.err);
    auto stale = publish({"--if-updated-at", "0"}, R"({"flags":{"b":true}})");
    BOOST_TEST(stale.status == 1, stale.err);
    BOOST_TEST(contains(stale.err, "aborted: the org's latest config is " + at1 + ", not 0"), stale.err);
    BOOST_TEST(stale.out.empty(), stale.out);
    got = t::run(tool, gw.admin({"get-config", "--org", "acme"}));
    BOOST_TEST(got.out == first_doc + "\n");
    BOOST_TEST(contains(got.err, "--if-updated-at " + at1), got.err);
    got = t::run(tool, gw.admin({"get-config", "--org", "acme", "--json"}));
    BOOST_TEST(got.out == R"({"configUpdatedAt":")" + at1 + R"(","config":)" + first_doc + "}\n", got.out);

    // Edited from the latest: published. The value printed is the value
    // stored, with what would drive a terminal escaped.
    const std::string c1_doc = R"({"flags":{"a":true},"note":"red\u009b[31m\u007f"})";
    auto second = publish({"--if-updated-at", at1}, c1_doc);
    BOOST_TEST_REQUIRE(second.status == 0, second.err);
    got = t::run(tool, gw.admin({"get-config", "--org", "acme"}));
    BOOST_TEST(got.out == c1_doc + "\n", got.out);
    BOOST_TEST(!contains(got.out, "\xc2\x9b"));

    for (const std::string bad : {"-1", "x", "", "12 "}) {
        const auto r = publish({"--if-updated-at", bad}, "{}");
        BOOST_TEST(r.status == 2, bad);
        BOOST_TEST(contains(r.err, "--if-updated-at: '" + bad + "' is not a configUpdatedAt"), r.err);
    }
    // Without the flag a publish is what it always was.
    BOOST_TEST(publish({}, "{}").status == 0);
    got = t::run(tool, gw.admin({"get-config"}));
    BOOST_TEST(got.status == 2, got.err);
}

BOOST_AUTO_TEST_SUITE_END()
