// `tether-gateway admin ...`: operator commands over AdminService.
#include "app/common/client_flags.hpp"
#include "app/common/code_file.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/one_shot.hpp"
#include "app/gateway/admin_token.hpp"
#include "app/gateway/commands.hpp"
#include "base/log.hpp"
#include "base/utf8.hpp"
#include "net/http_client.hpp"
#include "net/http_writer.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "net/sse_client.hpp"
#include "net/tls.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

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

/// A config to publish, at most 1 MiB: the gateway takes far less in one
/// request and says so, but a wrong path (/dev/zero, a log) must not be
/// read whole first.
std::string read_config_input(const std::string& where)
{
    constexpr std::size_t cap = std::size_t{1} << 20;
    std::ifstream file;
    std::istream* in = &std::cin;
    if (where != "-") {
        std::error_code ec;
        if (std::filesystem::is_directory(where, ec))
            throw cli::usage_error("cannot read " + where + ": a directory");
        file.open(where, std::ios::binary);
        if (!file) throw cli::usage_error("cannot read " + where + ": " + std::strerror(errno));
        in = &file;
    }
    std::string text(cap + 1, '\0');
    in->read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in->gcount()));
    if (text.size() > cap)
        throw cli::usage_error(where + ": larger than 1 MiB; a config is a small JSON object");
    return text;
}

/// A value a script reads from stdout. It comes from whatever answers at
/// --server: a broken gateway or a proxy's page must neither put terminal
/// escapes there nor end the CLI in the JSON library's words, and a code
/// shown made safe would be a wrong code, so it is refused whole.
std::string printable_answer(const json::object& res, std::string_view method, std::string_view key)
{
    const auto* v = res.if_contains(key);
    std::string text;
    if (v && v->is_string())
        text = v->get_string();
    else if (v && (v->is_int64() || v->is_uint64()))
        text = json::serialize(*v);
    // The rule a bearer token follows: 1-4096 visible ASCII characters.
    if (!net::http::usable_bearer_token(text))
        throw fatal_exit(exit_status::failure, std::string(method) + ": the answer has no usable " +
                                                   std::string(key) + " (1-4096 visible ASCII characters)");
    return text;
}

std::int64_t count_of(const json::object& o, const char* key)
{
    const auto* x = o.if_contains(key);
    return x && x->is_int64()    ? x->get_int64()
           : x && x->is_uint64() ? static_cast<std::int64_t>(x->get_uint64())
                                 : 0;
}

/// A count the answer must hold, whatever sent it.
std::int64_t count_answer(const json::object& res, std::string_view method, std::string_view key)
{
    const auto* v = res.if_contains(key);
    if (v && v->is_int64() && v->get_int64() >= 0) return v->get_int64();
    if (v && v->is_uint64() && v->get_uint64() <= 1'000'000'000'000)
        return static_cast<std::int64_t>(v->get_uint64());
    throw fatal_exit(exit_status::failure,
                     std::string(method) + ": the answer has no usable " + std::string(key) + " count");
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
    // The gateway takes whole seconds, and reads 0 as its default (1 h):
    // "500ms" must not become a code that lives an hour.
    if (auto ttl = inv.args.duration("ttl", cli::at_least(std::chrono::seconds(1)))) {
        if (ttl->count() % 1000 != 0)
            throw cli::usage_error(inv.args.origin("ttl") + ": '" + *inv.args.value("ttl") +
                                   "' is not whole seconds");
        req["ttlSeconds"] = ttl->count() / 1000;
    }
    if (auto uses = inv.args.count("uses", 1, 100'000)) req["maxUses"] = static_cast<std::int64_t>(*uses);
    const auto res = call(inv, "CreateEnrollmentCode", req);
    std::cout << printable_answer(res, "CreateEnrollmentCode", "code") << "\n";
    return 0;
}

int admin_revoke_enrollment_code(invocation& inv)
{
    const bool by_file = inv.args.value("code-file").has_value();
    const bool by_org = inv.args.value("all-codes-of").has_value();
    if (by_file == by_org)
        throw cli::usage_error("give --code-file FILE (- for stdin), or --all-codes-of ORG; one of them");
    json::object req;
    if (by_file)
        req["code"] = std::string(read_code_file(inv, "code-file").reveal());
    else
        req["orgId"] = required(inv, "all-codes-of");
    const auto count =
        count_answer(call(inv, "RevokeEnrollmentCode", req), "RevokeEnrollmentCode", "revoked");
    // One write: the log shares stderr.
    log::stderr_sink()("revoked " + std::to_string(count) + " enrollment code" + (count == 1 ? "" : "s"));
    return 0;
}

int admin_publish_config(invocation& inv)
{
    const auto& pos = inv.args.positionals();
    if (pos.size() != 1) throw cli::usage_error("publish-config takes one FILE (or - for stdin)");
    const std::string org = required(inv, "org");
    boost::system::error_code ec;
    auto doc = json::parse(read_config_input(pos[0]), ec);
    if (ec || !doc.is_object())
        throw cli::usage_error(pos[0] + ": not a JSON object" +
                               (ec ? " (" + ec.message() + ")" : std::string()));
    json::object req{{"orgId", org}, {"config", doc}};
    // The version the edit started from: a publish in between refuses this
    // one instead of being undone by it.
    if (const auto v = inv.args.value("if-updated-at")) {
        std::int64_t n = -1;
        const auto [end, bad] = std::from_chars(v->data(), v->data() + v->size(), n);
        if (v->empty() || bad != std::errc{} || end != v->data() + v->size() || n < 0)
            throw cli::usage_error(inv.args.origin("if-updated-at") + ": '" + terminal_safe(*v) +
                                   "' is not a configUpdatedAt (0 for an org without a config)");
        req["ifConfigUpdatedAt"] = std::to_string(n);
    }
    const auto res = call(inv, "PublishConfig", req);
    std::cout << printable_answer(res, "PublishConfig", "configUpdatedAt") << "\n" << std::flush;
    // Orgs exist by their nodes: a config may precede them, but an org
    // misspelt here would take it silently. Best effort: a gateway that
    // cannot say is not an error of the publish.
    try {
        const auto r = call(inv, "GetRollout", {{"orgId", org}, {"pageSize", 1}});
        if (count_of(r, "online") + count_of(r, "offline") + count_of(r, "revoked") == 0)
            log::stderr_sink()("note: org " + terminal_safe(org) +
                               " has no enrolled node yet; the config waits for its first (a misspelt org?)");
    } catch (const std::exception&) {
    }
    return 0;
}

int admin_get_config(invocation& inv)
{
    const std::string org = required(inv, "org");
    const auto res = call(inv, "GetConfig", {{"orgId", org}});
    const auto at = printable_answer(res, "GetConfig", "configUpdatedAt");
    const auto* doc = res.if_contains("config");
    if (!doc || !doc->is_object())
        throw fatal_exit(exit_status::failure, "GetConfig: the answer has no config object");
    if (inv.args.enabled("json")) {
        std::cout << terminal_safe_json(json::serialize(res)) << "\n";
        return 0;
    }
    // The document alone on stdout, so that an edited copy of it is what
    // publish-config reads; the version it is goes to stderr.
    std::cout << terminal_safe_json(json::serialize(*doc)) << "\n" << std::flush;
    log::stderr_sink()("org " + terminal_safe(org) + ": configUpdatedAt " + at +
                       (at == "0" ? " (none published yet)" : "") +
                       "; publish an edit of it with --if-updated-at " + at);
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
        std::cout << terminal_safe_json(json::serialize(all)) << "\n";
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

namespace {

std::string text_of(const json::object& o, const char* key)
{
    const auto* x = o.if_contains(key);
    if (!x) return "-";
    if (x->is_string()) return terminal_safe(x->get_string());
    if (x->is_int64() || x->is_uint64()) return json::serialize(*x);
    return "-";
}

void print_rollout(const std::string& org, const json::object& r, bool with_behind)
{
    std::printf("org %s  config %s\n", terminal_safe(org).c_str(), text_of(r, "configUpdatedAt").c_str());
    std::printf("online %lld  applied %lld  behind %lld  offline %lld  revoked %lld\n",
                static_cast<long long>(count_of(r, "online")), static_cast<long long>(count_of(r, "applied")),
                static_cast<long long>(count_of(r, "behind")), static_cast<long long>(count_of(r, "offline")),
                static_cast<long long>(count_of(r, "revoked")));
    std::printf("last caught up %s\n", text_of(r, "lastCaughtUpAt").c_str());
    const auto* nodes = r.if_contains("behindNodes");
    if (!with_behind || !nodes || !nodes->is_array() || nodes->get_array().empty()) return;
    std::printf("behind:\nNODE ID                NAME                 APPLIED          LAST SEEN\n");
    for (const auto& v : nodes->get_array()) {
        if (!v.is_object()) continue;
        const auto& n = v.get_object();
        std::printf("%-22s %-20s %-16s %s\n", text_of(n, "nodeId").c_str(), text_of(n, "nodeName").c_str(),
                    text_of(n, "appliedConfigUpdatedAt").c_str(), text_of(n, "lastSeenAt").c_str());
    }
    if (count_of(r, "behind") > static_cast<std::int64_t>(nodes->get_array().size()))
        std::printf("(and %lld more)\n",
                    static_cast<long long>(count_of(r, "behind") -
                                           static_cast<std::int64_t>(nodes->get_array().size())));
}

}  // namespace

int admin_rollout(invocation& inv)
{
    const std::string org = required(inv, "org");
    const auto wait = inv.args.duration("wait");
    const bool as_json = inv.args.enabled("json");
    const json::object request{{"orgId", org}, {"pageSize", 20}};
    if (!wait) {
        const auto r = call(inv, "GetRollout", request);
        if (as_json)
            std::cout << terminal_safe_json(json::serialize(r)) << "\n";
        else
            print_rollout(org, r, true);
        return 0;
    }

    // Follow the admin stream: every event may move the rollout (a node's
    // report, a new version, a revocation), so each one asks again. A node
    // that goes offline sends nothing: a poll every few seconds sees it.
    const auto target = resolve(inv);
    asio::io_context ioc;
    const auto tls = client_tls(inv, target.server.tls());
    net::http_client http(ioc.get_executor(), tls);
    net::rpc_client rpc(http, target.server);
    net::sse_options so;
    auto stream_url = target.server;
    stream_url.path = "/v1/admin/events";
    so.candidates = {stream_url};
    so.never_give_up = true;
    so.slow_retry = std::chrono::seconds(5);
    so.reconnect = backoff::policy{std::chrono::milliseconds(500), std::chrono::seconds(5)};
    net::sse_client sse(http, so, process_random(), inv.log);

    const auto deadline = std::chrono::steady_clock::now() + *wait;
    int status = 1;
    json::object last;
    std::optional<net::connect::error> failed;
    error_code stream_error;
    run_to_completion(ioc, [&]() -> awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer poke(ioc.get_executor());
        net::sse_client::prepare_fn prepare =
            [&](const net::sse_attempt&) -> awaitable<result<net::http::fields>> {
            net::http::fields h;
            h.set("Authorization", "Bearer " + std::string(target.token.reveal()));
            result<net::http::fields> out = std::move(h);
            co_return out;
        };
        bool dirty = false;  // an event came while the call was out
        net::sse_client::event_fn on_event = [&](const net::sse_event&) -> awaitable<void> {
            dirty = true;
            poke.cancel();
            co_return;
        };
        const auto poll = [&]() -> awaitable<void> {
            for (;;) {
                auto r = co_await rpc.call(std::string(net::admin_service), "GetRollout", request,
                                           target.token, std::chrono::seconds(15));
                if (!r) {
                    const auto& e = r.error();
                    // A gateway restarting or a replica away: keep waiting.
                    if (e.c != net::connect::code::unavailable &&
                        e.c != net::connect::code::deadline_exceeded) {
                        failed = e;
                        co_return;
                    }
                } else {
                    last = std::move(*r);
                    if (count_of(last, "behind") == 0) {
                        status = 0;
                        co_return;
                    }
                }
                const auto now = std::chrono::steady_clock::now();
                if (now >= deadline) co_return;
                if (!dirty) {
                    poke.expires_at(std::min(deadline, now + std::chrono::seconds(3)));
                    auto [ec] = co_await poke.async_wait(nothrow);
                    (void)ec;
                }
                dirty = false;
                // A burst of events costs one call: they all land in this wait.
                asio::steady_timer settle(ioc.get_executor(), std::chrono::milliseconds(100));
                auto [ec] = co_await settle.async_wait(nothrow);
                (void)ec;
            }
        };
        auto ended = co_await (poll() || sse.run(prepare, on_event));
        if (ended.index() == 1) stream_error = std::get<1>(ended);
    }());
    if (stream_error) throw fatal_exit(exit_status::failure, "admin event stream: " + stream_error.message());
    if (failed) {
        const auto st =
            failed->c == net::connect::code::invalid_argument ? exit_status::usage : exit_status::failure;
        throw fatal_exit(st, std::string(net::connect::to_string(failed->c)) + ": " + failed->message);
    }
    if (as_json) {
        std::cout << terminal_safe_json(json::serialize(last)) << "\n";
    } else {
        print_rollout(org, last, status != 0);
        if (status == 0 && count_of(last, "online") == 0)
            std::printf("no node of %s is online\n", terminal_safe(org).c_str());
    }
    if (status != 0) {
        // After the log's own lines, and in one write: its writer thread
        // shares stderr, and a message written in pieces got a log line
        // in the middle of it.
        inv.log.flush(std::chrono::milliseconds(500));
        log::stderr_sink()("timed out: " + std::to_string(count_of(last, "behind")) +
                           " online node(s) behind");
    }
    return status;
}

int admin_forget_nodes(invocation& inv)
{
    const std::string org = required(inv, "org");
    const auto offline_for = inv.args.duration("offline-for", cli::at_least(std::chrono::hours(1)));
    if (!offline_for) throw cli::usage_error("--offline-for is required (at least 1h)");
    if (offline_for->count() % 1000 != 0)
        throw cli::usage_error(inv.args.origin("offline-for") + ": '" + *inv.args.value("offline-for") +
                               "' is not whole seconds");
    const auto res =
        call(inv, "ForgetNodes", {{"orgId", org}, {"offlineForSeconds", offline_for->count() / 1000}});
    const auto count = count_answer(res, "ForgetNodes", "forgotten");
    log::stderr_sink()("forgot " + std::to_string(count) + " node" + (count == 1 ? "" : "s") + " of " +
                       terminal_safe(org) + " offline for " + *inv.args.value("offline-for") + " or more");
    return 0;
}

int admin_revoke(invocation& inv)
{
    const auto& pos = inv.args.positionals();
    if (pos.size() != 1) throw cli::usage_error("revoke takes one NODE_ID");
    call(inv, "RevokeNode", {{"nodeId", pos[0]}});
    log::stderr_sink()("revoked " + terminal_safe(pos[0]));  // one write: the log shares stderr
    return 0;
}

}  // namespace tether::app
