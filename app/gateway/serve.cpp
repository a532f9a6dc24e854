#include "app/common/exit_status.hpp"
#include "app/common/listen_address.hpp"
#include "app/common/one_shot.hpp"
#include "app/common/supervisor.hpp"
#include "app/gateway/admin_token.hpp"
#include "app/gateway/admin_token_watch.hpp"
#include "app/gateway/commands.hpp"
#include "app/gateway/data_dir.hpp"
#include "app/gateway/tls_watch.hpp"
#include "base/blocking_call.hpp"
#include "base/pid_lock.hpp"
#include "gateway/postgres/pg_schema.hpp"
#include "gateway/postgres/pg_store.hpp"
#include "gateway/service.hpp"
#include "gateway/sqlite_storage.hpp"
#include "gateway/sqlite_store.hpp"
#include "net/host_port.hpp"
#include "net/http_server.hpp"
#include "net/tls.hpp"
#include "settings/runtime_config.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <iostream>

namespace tether::app {

namespace {

/// --proxy-protocol-from: the balancers' networks. An IPv4 balancer reached
/// through a dual-stack listener shows as ::ffff:a.b.c.d, matched as IPv4.
std::function<bool(const asio::ip::address&)> proxy_sources(const invocation& inv, const std::string& text)
{
    std::vector<settings::ip_range> ranges;
    std::string_view rest(text);
    while (!rest.empty() || ranges.empty()) {
        const auto comma = rest.find(',');
        const auto item = rest.substr(0, comma);
        auto r = settings::ip_range::parse(item, inv.args.origin("proxy-protocol-from"));
        if (!r) throw cli::usage_error(r.error().message() + " ('" + std::string(item) + "')");
        ranges.push_back(*r);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
        if (rest.empty())
            throw cli::usage_error(inv.args.origin("proxy-protocol-from") + " ends with a comma");
    }
    return [ranges = std::move(ranges)](const asio::ip::address& peer) {
        auto a = peer;
        if (a.is_v6() && a.to_v6().is_v4_mapped())
            a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
        settings::ip_range one;
        one.v6 = a.is_v6();
        if (one.v6) {
            const auto b = a.to_v6().to_bytes();
            std::copy(b.begin(), b.end(), one.bytes.begin());
        } else {
            const auto b = a.to_v4().to_bytes();
            std::copy(b.begin(), b.end(), one.bytes.begin());
        }
        one.prefix = one.v6 ? 128 : 32;
        return std::any_of(ranges.begin(), ranges.end(),
                           [&](const settings::ip_range& r) { return r.contains(one); });
    };
}

/// --database (TETHER_DATABASE): a postgres:// or postgresql:// URI or a
/// libpq "key=value" string selects PostgreSQL; absent, the embedded file.
std::optional<std::string> postgres_conninfo(const invocation& inv)
{
    auto v = inv.args.value("database");
    if (!v || v->empty()) return std::nullopt;
    if (v->starts_with("postgres://") || v->starts_with("postgresql://") ||
        v->find('=') != std::string::npos) {
        if (inv.args.origin("database").starts_with("--"))
            inv.log.warn("gateway.database_on_command_line",
                         {{"hint",
                           "a command line is readable by every user of this machine until it is blanked; "
                           "set TETHER_DATABASE and keep the password in a passfile (PGPASSFILE)"}});
        return v;
    }
    // The value is not echoed: it may hold a password.
    throw cli::usage_error(
        "--database: expected a postgres:// or postgresql:// URI or a libpq connection string "
        "(host=... dbname=...); leave it out for the embedded SQLite file in --data-dir");
}

gateway::postgres::store_options postgres_options(const invocation& inv, std::string conninfo)
{
    gateway::postgres::store_options o;
    o.pool.conninfo = std::move(conninfo);
    if (auto v = inv.args.count("db-pool-size", 1, 256)) o.pool.size = *v;
    // Zero would switch PostgreSQL's statement_timeout off and give every
    // call no time at all; it takes whole milliseconds up to INT_MAX
    // (24.8 days), far above any wait worth making a caller sit through.
    if (auto v = inv.args.duration("db-timeout", {std::chrono::milliseconds(100), std::chrono::hours(24)})) {
        o.pool.statement_timeout = *v;
        o.pool.connect_timeout = *v;
    }
    return o;
}

/// A start-up failure of the database is a configuration error: it ends
/// the process with the reason (never the connection string).
awaitable<void> open_postgres(gateway::postgres::pg_store& db, const log::logger& log)
{
    auto version = co_await db.open();
    if (!version)
        throw std::runtime_error("database: " + version.error().message + " (SQLSTATE " +
                                 version.error().sqlstate + ")");
    log.info("gateway.database", {{"backend", "postgres"}, {"schema_version", *version}});
}

}  // namespace

int gateway_migrate(invocation& inv)
{
    const auto conninfo = postgres_conninfo(inv);
    if (!conninfo) throw cli::usage_error("migrate needs --database (or TETHER_DATABASE)");
    const auto opts = postgres_options(inv, *conninfo);
    asio::io_context ioc;
    int version = 0;
    auto op = [](asio::any_io_executor ex, gateway::postgres::store_options o, int& out) -> awaitable<void> {
        gateway::postgres::pg_connection c(ex);
        auto connected = co_await c.connect(o.pool.conninfo, o.pool.connect_timeout);
        if (!connected) throw std::runtime_error("database: " + connected.error().message);
        auto v = co_await gateway::postgres::migrate(c, gateway::postgres::gateway_migrations(),
                                                     std::chrono::minutes(5));
        if (!v)
            throw std::runtime_error("migration: " + v.error().message + " (SQLSTATE " + v.error().sqlstate +
                                     ")");
        out = *v;
    };
    run_to_completion(ioc, op(ioc.get_executor(), opts, version));
    inv.log.info("gateway.migrated", {{"schema_version", version}});
    std::cout << "schema version " << version << "\n";
    return 0;
}

int gateway_backup(invocation& inv)
{
    const auto& pos = inv.args.positionals();
    if (pos.size() != 1) throw cli::usage_error("backup takes one FILE to write");
    const std::filesystem::path data_dir = inv.args.value("data-dir").value_or("./tether-data");
    const std::filesystem::path out = pos[0];
    try {
        gateway::backup_database(data_dir / "tether.db", out);
    } catch (const std::runtime_error& e) {
        throw fatal_exit(exit_status::failure, std::string("backup failed: ") + e.what());
    }
    inv.log.info("gateway.backed_up", {{"file", std::filesystem::absolute(out).string()}});
    return 0;
}

int gateway_serve(invocation& inv)
{
    const auto listen_text = inv.args.value("listen").value_or("127.0.0.1:8443");
    const auto listen = parse_listen(inv, "listen", listen_text);
    const bool tls = inv.args.has("tls-cert") || inv.args.has("tls-key");
    if (tls && !(inv.args.has("tls-cert") && inv.args.has("tls-key")))
        throw cli::usage_error("--tls-cert and --tls-key go together");
    if (!tls && !net::is_loopback_host(listen.text.host))
        throw cli::usage_error("refusing plain HTTP on non-loopback address '" + listen_text +
                               "': give --tls-cert and --tls-key, or listen on 127.0.0.1 / [::1]");

    supervisor_options opts;
    if (auto v = inv.args.count("threads", 1, 64)) opts.threads = static_cast<unsigned>(*v);
    if (auto v = inv.args.duration("drain-timeout")) opts.drain = *v;
    gateway::gateway_options gw;
    if (auto v = inv.args.count("stream-limit-per-ip", 1, 1'000'000)) gw.hub.per_ip = *v;
    if (auto v = inv.args.count("stream-limit", 1, 10'000'000)) gw.hub.global = *v;
    if (auto v = inv.args.count("admin-stream-limit-per-ip", 1, 1'000'000)) gw.hub.admin_per_ip = *v;
    if (auto v = inv.args.count("admin-stream-limit", 1, 10'000'000)) gw.hub.admin_global = *v;
    if (auto v = inv.args.count("auth-failures-per-minute", 1, 1'000'000'000))
        gw.auth_failures_per_window = *v;
    gw.console_secure_cookie = tls || inv.args.enabled("console-secure-cookie");
    auto server_opts = gateway::default_server_options();
    server_opts.connection_strands = opts.threads;
    if (auto v = inv.args.count("max-connections-per-ip", 1, 10'000'000))
        server_opts.max_connections_per_ip = *v;
    if (auto v = inv.args.value("proxy-protocol-from")) server_opts.proxy_from = proxy_sources(inv, *v);

    // Every flag is checked, and every file it names read, before anything
    // is created.
    std::optional<gateway::postgres::store_options> postgres;
    if (const auto conninfo = postgres_conninfo(inv)) postgres = postgres_options(inv, *conninfo);
    std::shared_ptr<net::replaceable_tls> tls_ctx;
    tls_files tls_paths;
    std::string tls_in_use;
    if (tls) {
        tls_paths = {*inv.args.value("tls-cert"), *inv.args.value("tls-key")};
        try {
            const auto pem = net::read_server_tls(tls_paths.cert_chain, tls_paths.private_key);
            tls_ctx = std::make_shared<net::replaceable_tls>(
                net::make_server_tls(pem, tls_paths.cert_chain, tls_paths.private_key));
            tls_in_use = tls_digest(pem);
        } catch (const std::runtime_error& e) {
            throw cli::usage_error(e.what());
        }
    }

    // Everything the gateway creates (database, WAL, token file) is for its
    // own user only.
    ::umask(077);
    const std::filesystem::path data_dir = inv.args.value("data-dir").value_or("./tether-data");
    prepare_data_dir(data_dir, inv.log);
    // The embedded database serves one gateway: a second on the same files
    // would share the data but not the events (each fans out only its own),
    // so its agents would miss live updates. Replicas need PostgreSQL.
    std::optional<pid_lock> sole_gateway;
    if (!postgres) {
        try {
            sole_gateway.emplace(data_dir / "gateway.lock");
        } catch (const pid_lock::held_elsewhere& e) {
            throw cli::usage_error("--data-dir " + data_dir.string() +
                                   " is in use by another tether-gateway (PID " + e.holder +
                                   "); the embedded database serves one gateway: for several, give them "
                                   "PostgreSQL (--database)");
        } catch (const std::system_error& e) {
            throw cli::usage_error("--data-dir " + data_dir.string() + ": " + e.what());
        }
    }
    const std::filesystem::path token_file =
        inv.args.value("admin-token-file").value_or((data_dir / "admin.token").string());
    bool created = false;
    const secret admin_token = load_admin_token(token_file, true, &created);
    inv.log.info("gateway.admin_token",
                 {{"file", std::filesystem::absolute(token_file).string()}, {"created", created}});

    // Order matters: the supervisor (and its io_context) outlives the
    // storage thread, which joins before anything it completes into dies.
    supervisor sup(inv.log, opts);
    std::unique_ptr<gateway::sqlite_storage> file;
    asio::thread_pool storage_thread(1);
    std::unique_ptr<gateway::store> db;
    gateway::postgres::pg_store* pg = nullptr;
    if (postgres) {
        auto store = std::make_unique<gateway::postgres::pg_store>(
            sup.context().get_executor(), std::move(*postgres), process_random(), inv.log);
        pg = store.get();
        run_to_completion(sup.context(), open_postgres(*pg, inv.log));
        sup.context().restart();
        db = std::move(store);
    } else {
        file = std::make_unique<gateway::sqlite_storage>(data_dir / "tether.db");
        db = std::make_unique<gateway::sqlite_store>(*file, storage_thread.get_executor());
        inv.log.info(
            "gateway.database",
            {{"backend", "sqlite"}, {"file", std::filesystem::absolute(data_dir / "tether.db").string()}});
    }
    gateway::service svc(*db, admin_token, gw, inv.log, wall_ms);
    server_opts.on_refused = [&svc](unsigned status) {
        svc.count_refusal(status);
    };
    net::http_server server(
        sup.context().get_executor(), listen.endpoint,
        [&svc](net::http::request req, net::peer_info peer) {
            return svc.handle(std::move(req), std::move(peer));
        },
        inv.log, server_opts, tls_ctx);
    const auto ep = server.local_endpoint();
    inv.log.info("gateway.listening", {{"address", ep.address().to_string()},
                                       {"port", ep.port()},
                                       {"tls", tls},
                                       {"data_dir", std::filesystem::absolute(data_dir).string()}});
    if (tls_ctx) {
        const auto facts = net::describe_certificate(*tls_ctx->current());
        inv.log.info("gateway.tls_certificate", certificate_fields(facts));
        svc.note_tls_certificate(facts.not_after_unix);
    }
    sup.add("http", [&server] { return server.run(); });
    sup.add("housekeeping", [&svc] { return svc.housekeeping(); });
    sup.add("readiness", [&svc] { return svc.readiness(); });
    sup.add("fleet-sampler", [&svc] { return svc.sample_fleet(); });
    sup.add("admin-token", [&svc, &token_file, &storage_thread, &inv] {
        return follow_admin_token(token_file, svc, storage_thread.get_executor(), inv.log);
    });
    if (tls_ctx)
        sup.add("tls-files", [&tls_paths, &tls_in_use, &tls_ctx, &storage_thread, &inv, &svc] {
            std::function<void(const net::certificate_facts&)> replaced =
                [&svc](const net::certificate_facts& f) {
                    svc.note_tls_certificate(f.not_after_unix);
                };
            return follow_tls_files(tls_paths, tls_in_use, *tls_ctx, std::move(replaced),
                                    storage_thread.get_executor(), inv.log);
        });
    if (pg) sup.add("event-feed", [pg] { return pg->run_feed(); });
    const int status = sup.run();
    storage_thread.join();
    return status;
}

}  // namespace tether::app
