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

BOOST_AUTO_TEST_SUITE_END()
