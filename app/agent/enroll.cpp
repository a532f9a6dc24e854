// `tether enroll`: registers the node and proves the identity works.
#include "app/agent/commands.hpp"
#include "app/common/client_flags.hpp"
#include "app/common/code_file.hpp"
#include "app/common/exit_status.hpp"
#include "app/common/one_shot.hpp"
#include "auth/keys.hpp"
#include "auth/session.hpp"
#include "auth/state_store.hpp"
#include "base/secret.hpp"
#include "base/utf8.hpp"
#include "base/whole_file.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "net/tls.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <optional>
#include <system_error>
#include <tuple>

namespace tether::app {

namespace {

namespace json = boost::json;
namespace pj = net::protojson;

/// What the identity's files take while they are written (each through a
/// temporary file of its own), with room to spare for file systems with
/// blocks larger than 4 KiB.
constexpr std::size_t identity_room = 64 * 1024;

/// The enrollment code: from --code-file (a file, or - for stdin; one
/// line, at most 4 KiB) or --code (TETHER_CODE, or the command line, which
/// every user of the machine can read until run_program blanks it: said in
/// a warning).
secret enrollment_code(const invocation& inv)
{
    const auto file = inv.args.value("code-file");
    const auto given = inv.args.value("code");
    if (file && given)
        throw cli::usage_error(inv.args.origin("code") + " and " + inv.args.origin("code-file") +
                               " both give the code; use one");
    if (given) {
        if (given->empty()) throw cli::usage_error(inv.args.origin("code") + " is empty");
        if (inv.args.origin("code").starts_with("--"))
            inv.log.warn("enroll.code_on_command_line",
                         {{"hint",
                           "a command line is readable by every user of this machine until the code "
                           "is blanked; set TETHER_CODE or use --code-file FILE (- for stdin)"}});
        return secret(*given);
    }
    if (!file || file->empty()) throw cli::usage_error("--code or --code-file is required (or TETHER_CODE)");
    return read_code_file(inv, "code-file");
}

std::string host_name()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "node";
    return buf;
}

}  // namespace

int agent_enroll(invocation& inv)
{
    const auto server_text = inv.args.value("server");
    const bool skip = inv.args.enabled("skip-if-enrolled");
    if (skip && inv.args.enabled("force"))
        throw cli::usage_error("--skip-if-enrolled and --force contradict");
    if (skip) {
        // An init step that runs before every start of the agent (a
        // Kubernetes init container): enrolled once, then a no-op, even
        // after the single-use code is gone.
        const auto paths = resolve_state_dir(inv);
        std::error_code ec;
        if (std::filesystem::exists(paths.state_file(), ec)) {
            try {
                const auto st = auth::load_state(paths);
                inv.log.info("enroll.skipped", {{"node", st.node_id}, {"reason", "already enrolled"}});
                return 0;
            } catch (const auth::state_error& e) {
                throw fatal_exit(exit_status::usage, e.what());
            }
        }
    }
    if (!server_text || server_text->empty()) throw cli::usage_error("--server is required");
    const secret code = enrollment_code(inv);
    const auto server = parse_server_list(*server_text, inv.args.origin("server"), process_random());
    const auto tls = client_tls(inv, any_tls(server));
    const auto paths = resolve_state_dir(inv);
    std::error_code ec;
    if (std::filesystem::exists(paths.state_file(), ec) && !inv.args.enabled("force"))
        throw fatal_exit(exit_status::usage, "this node is already enrolled (" + paths.state_file().string() +
                                                 "); pass --force to replace its identity");
    const auth::state_lock lock(paths, true);
    const auto key = auth::generate_key();
    const std::string name = inv.args.value("name").value_or(host_name());
    // Room for the identity before the code is spent: a disk found full
    // after Enroll would leave a registered node whose key no one holds,
    // and a single-use code gone with it. Released just before the writes.
    std::optional<auth::space_reservation> room;
    try {
        room.emplace(paths.dir / "enroll.reserved", identity_room);
    } catch (const std::runtime_error& e) {
        throw fatal_exit(exit_status::failure, "cannot store this node's identity in " + paths.dir.string() +
                                                   " (" + e.what() +
                                                   "); nothing was sent, the enrollment code is still good");
    }

    asio::io_context ioc;
    net::http_client http(ioc.get_executor(), tls);
    net::rpc_client rpc(http, server);
    std::optional<net::rpc_result<json::object>> out;
    const json::object req{{"enrollmentCode", std::string(code.reveal())},
                           {"nodeName", name},
                           {"publicKey", pj::base64_encode(key.public_raw)},
                           {"capabilities", json::array{"heartbeat", "config", "events"}}};
    run_to_completion(ioc, [&]() -> awaitable<void> {
        const secret none;
        // With several replicas, one that cannot answer (down, no database)
        // hands the attempt to the next; any other answer is the answer.
        for (std::size_t attempt = 0; attempt < server.size(); ++attempt) {
            auto r = co_await rpc.call(std::string(net::node_service), "Enroll", req, none,
                                       std::chrono::seconds(30));
            const bool next = !r && (r.error().c == net::connect::code::unavailable ||
                                     r.error().c == net::connect::code::deadline_exceeded);
            out = std::move(r);
            if (!next) break;
        }
    }());
    if (!*out) {
        const auto& e = out->error();
        if (e.c == net::connect::code::permission_denied || e.c == net::connect::code::invalid_argument)
            throw fatal_exit(exit_status::usage, "enrollment refused: " + e.message);
        throw fatal_exit(
            exit_status::failure,
            "enrollment failed: " + std::string(net::connect::to_string(e.c)) + ": " + e.message);
    }
    auth::node_state st;
    st.server_url = *server_text;
    st.node_id = pj::value_or(pj::get_string(**out, "nodeId"), "");
    st.org_id = pj::value_or(pj::get_string(**out, "orgId"), "");
    st.api_key = secret(pj::value_or(pj::get_string(**out, "apiKey"), ""));
    st.node_name = name;
    // Kept for ever and sent in every login (nodeId also in the signed
    // message, where a line end would be ambiguous), shown by `tether
    // status`: what a broken gateway answers must not become the identity.
    for (const auto& [field, value, most] : {std::tuple{"nodeId", std::string_view(st.node_id), 256},
                                             std::tuple{"orgId", std::string_view(st.org_id), 256},
                                             std::tuple{"apiKey", st.api_key.reveal(), 4096}})
        if (value.empty() || value.size() > static_cast<std::size_t>(most) || has_control_characters(value))
            throw fatal_exit(exit_status::failure,
                             std::string("Enroll answered an identity this agent cannot use (") + field +
                                 ": 1-" + std::to_string(most) +
                                 " bytes without control characters); nothing was saved");
    room->release();
    try {
        // Key first: a state.json that names a key which is not on disk
        // would be an identity nobody can use.
        auth::save_key(paths, key.private_pem);
        std::filesystem::remove(paths.config_file(), ec);
        auth::save_state(paths, st);
    } catch (const std::runtime_error& e) {
        // Only when something else took the room meanwhile.
        throw fatal_exit(exit_status::failure,
                         "enrolled as " + st.node_id + " but could not save its identity (" + e.what() +
                             "); revoke " + st.node_id +
                             " (tether-gateway admin revoke) and enroll with a new code");
    }

    // Prove the identity works before declaring success.
    asio::io_context ioc2;
    asio::thread_pool blocking(1);
    std::optional<auth::session_result<secret>> login;
    {
        auth::session_manager session(ioc2.get_executor(), blocking.get_executor(), server,
                                      net::fixed_tls(tls), paths, st, key.private_pem, inv.log);
        run_to_completion(ioc2, [&]() -> awaitable<void> {
            login = co_await session.token();
        }());
    }
    blocking.join();
    if (!*login)
        throw fatal_exit(exit_status::failure, "enrolled as " + st.node_id + " but the first login failed: " +
                                                   login->error().error.message);
    std::cout << "enrolled " << st.node_id << " in org " << st.org_id << " (state in " << paths.dir.string()
              << ")\n";
    return 0;
}

}  // namespace tether::app
