// `tether-gateway admin ...`: operator commands over AdminService.
#include "app/common/client_flags.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/one_shot.hpp"
#include "app/gateway/admin_token.hpp"
#include "app/gateway/commands.hpp"
#include "base/utf8.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "net/tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace tether::app {

namespace {

namespace json = boost::json;

struct admin_target {
    net::url server;
    secret token;
};

admin_target resolve(const invocation& inv)
{
    const auto text = inv.args.value("server").value_or("http://127.0.0.1:8443");
    auto server = parse_url_flag(text, inv.args.origin("server"));
    const std::filesystem::path file =
        inv.args.value("admin-token-file").value_or("./tether-data/admin.token");
    try {
        return admin_target{std::move(server), load_admin_token(file, false)};
    } catch (const std::runtime_error& e) {
        throw fatal_exit(exit_status::usage, std::string(e.what()) + " (set --admin-token-file)");
    }
}

/// One AdminService call on a private event loop: the CLI does nothing else.
json::object call(const invocation& inv, const std::string& method, json::object request)
{
    const auto target = resolve(inv);
    asio::io_context ioc;
    const auto tls = client_tls(inv, target.server.tls());
    net::http_client http(ioc.get_executor(), tls);
    net::rpc_client rpc(http, target.server);
    std::optional<net::rpc_result<json::object>> out;
    run_to_completion(ioc, [&]() -> awaitable<void> {
        auto r = co_await rpc.call(std::string(net::admin_service), method, request, target.token,
                                   std::chrono::seconds(15));
        out = std::move(r);
    }());
    if (!out) throw std::runtime_error("no answer");
    if (!*out) {
        const auto& e = out->error();
        const auto status =
            e.c == net::connect::code::invalid_argument || e.c == net::connect::code::not_found
                ? exit_status::usage
                : exit_status::failure;
        throw fatal_exit(status, std::string(net::connect::to_string(e.c)) + ": " + e.message);
    }
    return std::move(**out);
}

std::string required(const invocation& inv, std::string_view flag)
{
    auto v = inv.args.value(flag);
    if (!v || v->empty()) throw cli::usage_error("--" + std::string(flag) + " is required");
    return *v;
}

}  // namespace

int admin_create_enrollment_code(invocation& inv)
{
    json::object req{{"orgId", required(inv, "org")}};
    if (auto ttl = inv.args.value("ttl"))
        req["ttlSeconds"] = cli::parse_duration(*ttl, "--ttl").count() / 1000;
    const auto res = call(inv, "CreateEnrollmentCode", req);
    std::cout << res.at("code").as_string().c_str() << "\n";
    return 0;
}

int admin_publish_config(invocation& inv)
{
    const auto& pos = inv.args.positionals();
    if (pos.size() != 1) throw cli::usage_error("publish-config takes one FILE (or - for stdin)");
    std::stringstream ss;
    if (pos[0] == "-") {
        ss << std::cin.rdbuf();
    } else {
        std::ifstream in(pos[0]);
        if (!in) throw cli::usage_error("cannot read " + pos[0]);
        ss << in.rdbuf();
    }
    boost::system::error_code ec;
    auto doc = json::parse(ss.str(), ec);
    if (ec || !doc.is_object())
        throw cli::usage_error(pos[0] + ": not a JSON object" +
                               (ec ? " (" + ec.message() + ")" : std::string()));
    const auto res = call(inv, "PublishConfig", {{"orgId", required(inv, "org")}, {"config", doc}});
    const auto& at = res.at("configUpdatedAt");
    std::cout << (at.is_string() ? std::string(at.get_string()) : json::serialize(at)) << "\n";
    return 0;
}

int admin_nodes(invocation& inv)
{
    json::array all;
    std::string page;
    do {
        json::object req{{"orgId", inv.args.value("org").value_or("")}, {"pageSize", 500}};
        if (!page.empty()) req["pageToken"] = page;
        auto res = call(inv, "ListNodes", req);
        if (const auto* n = res.if_contains("nodes"); n && n->is_array())
            for (const auto& item : n->get_array()) all.push_back(item);
        const auto* next = res.if_contains("nextPageToken");
        page = next && next->is_string() ? std::string(next->get_string()) : std::string();
    } while (!page.empty());
    if (inv.args.enabled("json")) {
        std::cout << json::serialize(all) << "\n";
        return 0;
    }
    std::cout << "NODE ID                ORG               NAME                 LAST SEEN                "
                 "ONLINE  APPLIED          VERSION     REVOKED\n";
    for (const auto& v : all) {
        if (!v.is_object()) continue;
        const auto& n = v.get_object();
        const auto get = [&](const char* k) {
            const auto* x = n.if_contains(k);
            return x && x->is_string() ? terminal_safe(x->get_string()) : std::string("-");
        };
        const auto flag = [&](const char* k) {
            const auto* x = n.if_contains(k);
            return x && x->is_bool() && x->get_bool();
        };
        std::printf("%-22s %-17s %-20s %-24s %-7s %-16s %-11s %s\n", get("nodeId").c_str(),
                    get("orgId").c_str(), get("nodeName").c_str(), get("lastSeenAt").c_str(),
                    flag("online") ? "yes" : "no", get("appliedConfigUpdatedAt").c_str(),
                    get("agentVersion").c_str(), flag("revoked") ? "yes" : "no");
    }
    return 0;
}

int admin_revoke(invocation& inv)
{
    const auto& pos = inv.args.positionals();
    if (pos.size() != 1) throw cli::usage_error("revoke takes one NODE_ID");
    call(inv, "RevokeNode", {{"nodeId", pos[0]}});
    std::cerr << "revoked " << pos[0] << "\n";
    return 0;
}

}  // namespace tether::app
