// `tether-gateway admin` commands against a real gateway: revoking a code
// that leaked (with a real `tether enroll` refused after, and the code on no
// command line on the way), and forgetting nodes gone for good.
#include "support/child_process.hpp"
#include "support/fleet.hpp"
#include "support/text.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>

namespace t = tether::test;
using t::contains;

BOOST_AUTO_TEST_SUITE(admin_cli)

BOOST_AUTO_TEST_CASE(a_leaked_code_is_revoked_from_a_file_or_stdin_and_enrolls_no_one_after)
{
    t::gateway_process gw;
    t::temp_dir dir;
    const auto tool = t::binary("tether-gateway");
    const auto enroll_with = [&](const std::string& code, const std::string& name) {
        t::child_process::options o;
        o.env_extra = {"TETHER_CODE=" + code};
        return t::run(
            t::binary("tether"),
            {"enroll", "--server", gw.url, "--state-dir", (dir.path() / name).string(), "--name", name}, o);
    };
    const auto shared = t::run(tool, gw.admin({"create-enrollment-code", "--org", "acme", "--uses", "50"}));
    BOOST_TEST_REQUIRE(shared.status == 0, shared.err);
    const std::string leaked = shared.out.substr(0, shared.out.find('\n'));
    BOOST_TEST_REQUIRE(enroll_with(leaked, "before").status == 0);

    // From stdin: the code is in no argv, ours or the CLI's.
    t::child_process::options in;
    in.stdin_data = leaked + "\n";
    auto r = t::run(tool, gw.admin({"revoke-enrollment-code", "--code-file", "-"}), in);
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.err, "revoked 1 enrollment code"), r.err);
    auto after = enroll_with(leaked, "after");
    BOOST_TEST(after.status == 2, after.err);
    BOOST_TEST(contains(after.err, "revoked"), after.err);
    BOOST_TEST(!std::filesystem::exists(dir.path() / "after" / "state.json"));
    // Once more, from a file: nothing left to revoke, said as such.
    const auto file = dir.path() / "code.txt";
    t::write_private_file(file, leaked + "\n");
    r = t::run(tool, gw.admin({"revoke-enrollment-code", "--code-file", file.string()}));
    BOOST_TEST(r.status == 2, r.err);
    BOOST_TEST(contains(r.err, "no such enrollment code"), r.err);

    // Every code of an org, when which one leaked is unknown.
    const auto one = gw.code("acme"), two = gw.code("acme"), theirs = gw.code("other");
    r = t::run(tool, gw.admin({"revoke-enrollment-code", "--all-codes-of", "acme"}));
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.err, "revoked 2 enrollment codes"), r.err);
    BOOST_TEST(enroll_with(one, "one").status == 2);
    BOOST_TEST(enroll_with(two, "two").status == 2);
    BOOST_TEST(enroll_with(theirs, "theirs").status == 0, "another org's code still enrolls");

    // Bad input names what is wrong, before anything is sent.
    for (const auto& args : {std::vector<std::string>{"revoke-enrollment-code"},
                             std::vector<std::string>{"revoke-enrollment-code", "--code-file", file.string(),
                                                      "--all-codes-of", "acme"},
                             std::vector<std::string>{"revoke-enrollment-code", "--code-file",
                                                      (dir.path() / "missing").string()}}) {
        r = t::run(tool, gw.admin(args));
        BOOST_TEST(r.status == 2, r.err);
    }
}

BOOST_AUTO_TEST_CASE(forget_nodes_takes_an_org_and_at_least_an_hour_of_silence)
{
    // What it deletes, and when, is gateway_rpc_suite's (a clock the test
    // moves); here the command as an operator types it.
    t::gateway_process gw;
    t::temp_dir dir;
    const auto tool = t::binary("tether-gateway");
    t::enroll(gw, dir.path() / "state", "acme", "n1");
    auto r = t::run(tool, gw.admin({"forget-nodes", "--org", "acme", "--offline-for", "1h"}));
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.err, "forgot 0 nodes of acme offline for 1h or more"), r.err);
    r = t::run(tool, gw.admin({"nodes", "--org", "acme", "--json"}));
    BOOST_TEST(contains(r.out, "\"nodeName\":\"n1\""), r.out);
    // An org with a node gets its config without a note; a misspelt one
    // is named.
    t::child_process::options doc;
    doc.stdin_data = "{}";
    r = t::run(tool, gw.admin({"publish-config", "--org", "acme", "-"}), doc);
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(!contains(r.err, "note:"), r.err);
    r = t::run(tool, gw.admin({"publish-config", "--org", "acmee", "-"}), doc);
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.err, "note: org acmee has no enrolled node yet"), r.err);
    const std::vector<std::vector<std::string>> bad{
        {"forget-nodes", "--org", "acme", "--offline-for", "30m"},
        {"forget-nodes", "--org", "acme", "--offline-for", "3600500ms"},
        {"forget-nodes", "--org", "acme"},
        {"forget-nodes", "--offline-for", "2h"},
        {"forget-nodes", "--org", "a/b", "--offline-for", "2h"}};
    for (const auto& args : bad) {
        r = t::run(tool, gw.admin(args));
        BOOST_TEST(r.status == 2, args.back() << ": " << r.err);
    }
}

BOOST_AUTO_TEST_SUITE_END()
