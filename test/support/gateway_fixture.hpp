// The real gateway service on a loopback server, a real store, and a clock
// the test moves (the one fake: time). The store is the embedded SQLite file,
// or, in postgres_test, a database of its own on one throwaway PostgreSQL
// cluster the whole executable shares (support/fixture_backend.hpp): the
// same test cases run against both backends.
#pragma once

#include "auth/keys.hpp"
#include "gateway/service.hpp"
#include "net/http_client.hpp"
#include "net/protojson.hpp"
#include "net/rpc_client.hpp"
#include "net/sse_parser.hpp"
#include "net/tls.hpp"
#include "support/child_process.hpp"
#include "support/fixture_backend.hpp"
#include "support/loopback_server.hpp"
#include "support/outage_store.hpp"
#include "support/run_for.hpp"
#include "support/test_pki.hpp"

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <future>
#include <map>
#include <optional>

namespace tether::test {

/// The error code of a call that must fail.
template <class R>
net::connect::code code_of(const R& r)
{
    BOOST_TEST_REQUIRE(!r.has_value(), "expected an error");
    return r.error().c;
}

struct enrolled_node {
    std::string node_id;
    std::string org_id;
    secret api_key;
    auth::key_pair key;
};

class gateway_fixture {
public:
    /// `tls`: the server speaks TLS with a test CA the client trusts.
    explicit gateway_fixture(gateway::gateway_options opts = {}, net::server_options server_opts = {},
                             bool tls = false)
        : opts_(opts), server_opts_(server_opts)
    {
        if (tls) pki_ = make_pki(dir.path(), "gateway", {"localhost"}, {"127.0.0.1"});
        start();
    }
    ~gateway_fixture() { stop(); }

    void start()
    {
        db_ = std::make_unique<outage_store>(
            backend_->open(ioc, dir.path(), pool_.get_executor(), logs.logger()));
        svc_ = std::make_unique<gateway::service>(*db_, admin, opts_, logs.logger(),
                                                  [this] { return now.load(); });
        backend_->start_feed(ioc);
        srv_ = std::make_unique<loopback_server>(
            ioc,
            [this](net::http::request req, net::peer_info peer) {
                return svc_->handle(std::move(req), std::move(peer));
            },
            pki_ ? net::make_server_tls(pki_->cert, pki_->key) : nullptr, server_opts_);
        http_ = std::make_unique<net::http_client>(ioc.get_executor(),
                                                   pki_ ? net::make_client_tls(pki_->ca_cert) : nullptr);
        rpc_ = std::make_unique<net::rpc_client>(*http_, srv_->base());
    }

    /// A gateway restart: memory gone, the database file kept.
    void restart()
    {
        stop();
        start();
    }

    void stop()
    {
        rpc_.reset();
        http_.reset();
        if (srv_) srv_->stop();
        srv_.reset();
        backend_->stop_feed(ioc);
        // Nothing of the old service may still be queued on the storage
        // thread or in the context when its objects go: wait for the thread
        // to run everything posted so far, then run what it completed.
        std::promise<void> drained;
        asio::post(pool_, [&drained] { drained.set_value(); });
        drained.get_future().wait();
        ioc.restart();
        ioc.poll();
        svc_.reset();
        db_.reset();
        backend_->close();
    }

    /// Everything the store keeps at rest, as bytes: a secret must not be in it.
    std::string stored_bytes() { return backend_->stored_bytes(dir.path()); }
    std::int64_t count_rows(const std::string& table) { return backend_->count_rows(dir.path(), table); }
    void refuse_inserts(const std::string& table, bool refuse)
    {
        backend_->refuse_inserts(dir.path(), table, refuse);
    }

    /// Events reach streams through the store's feed: on PostgreSQL that is
    /// the tail, which runs while the context does.
    void settle() { pump_for(ioc, std::chrono::milliseconds(100)); }

    /// One HTTP exchange with the gateway (5 s at most); one that fails
    /// fails the test.
    net::http::response fetch(net::http::request req)
    {
        auto r = run_for(ioc, http().request(server().base(), std::move(req), std::chrono::seconds(5)));
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message());
        return std::move(*r);
    }
    /// GET `target`, with `bearer` as the Authorization when it is not empty.
    net::http::response get(std::string target, const secret& bearer = {})
    {
        net::http::request req;
        req.target = std::move(target);
        if (!bearer.empty()) req.headers.set("Authorization", "Bearer " + std::string(bearer.reveal()));
        return fetch(std::move(req));
    }

    net::rpc_result<boost::json::object> call(std::string service, std::string method,
                                              boost::json::object req, secret bearer = {})
    {
        return run_for(ioc, rpc_->call(std::move(service), std::move(method), std::move(req),
                                       std::move(bearer), std::chrono::seconds(10)));
    }
    net::rpc_result<boost::json::object> node(std::string method, boost::json::object req, secret bearer = {})
    {
        return call("tether.v1.NodeService", std::move(method), std::move(req), std::move(bearer));
    }
    net::rpc_result<boost::json::object> admin_call(std::string method, boost::json::object req)
    {
        return call("tether.v1.AdminService", std::move(method), std::move(req), admin);
    }

    std::string new_code(const std::string& org)
    {
        auto r = admin_call("CreateEnrollmentCode", {{"orgId", org}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::string(r->at("code").as_string());
    }

    enrolled_node enroll(const std::string& org, const std::string& name = "node")
    {
        enrolled_node n;
        n.key = auth::generate_key();
        auto r = node("Enroll", {{"enrollmentCode", new_code(org)},
                                 {"nodeName", name},
                                 {"publicKey", net::protojson::base64_encode(n.key.public_raw)},
                                 {"capabilities", boost::json::array{"heartbeat"}}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        n.node_id = r->at("nodeId").as_string();
        n.org_id = r->at("orgId").as_string();
        n.api_key = secret(std::string(r->at("apiKey").as_string()));
        return n;
    }

    /// BeginAuth + sign + CompleteAuth.
    net::rpc_result<boost::json::object> login(const enrolled_node& n)
    {
        auto begin = node("BeginAuth", {{"nodeId", n.node_id}, {"apiKey", std::string(n.api_key.reveal())}});
        if (!begin) return begin;
        const auto challenge =
            *net::protojson::base64_decode(begin->at("challenge").as_string(), "challenge");
        const auto sig = auth::sign(n.key.private_pem, auth::login_message(n.node_id, challenge));
        return node("CompleteAuth", {{"nodeId", n.node_id},
                                     {"challenge", net::protojson::base64_encode(challenge)},
                                     {"signature", net::protojson::base64_encode(sig)}});
    }

    secret session(const enrolled_node& n)
    {
        auto r = login(n);
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return secret(std::string(r->at("sessionToken").as_string()));
    }

    secret stream_token(const secret& session)
    {
        auto r = node("CreateStreamToken", {}, session);
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return secret(std::string(r->at("token").as_string()));
    }

    /// Opens /v1/events (or the admin stream) and returns the response head
    /// status plus the open body.
    std::pair<unsigned, std::unique_ptr<net::body_stream>> open_stream(const secret& token,
                                                                       std::string last_event_id = {},
                                                                       bool admin_stream = false)
    {
        net::http::request req;
        req.target = admin_stream ? "/v1/admin/events" : "/v1/events";
        req.headers.set("Accept", "text/event-stream");
        req.headers.set("Authorization", "Bearer " + std::string(token.reveal()));
        if (!last_event_id.empty()) req.headers.set("Last-Event-ID", last_event_id);
        auto r = run_for(ioc, http_->open(srv_->base(), req, std::chrono::seconds(5)));
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message());
        const unsigned status = (*r)->head().status;
        return {status, std::move(*r)};
    }

    /// Reads events until `n` arrived (or the idle cap passes).
    std::vector<net::sse_event> read_events(net::body_stream& s, std::size_t n,
                                            std::chrono::milliseconds idle = std::chrono::seconds(3))
    {
        std::vector<net::sse_event> out;
        while (out.size() < n) {
            auto chunk = run_for(ioc, s.read_some(idle));
            if (!chunk || chunk->empty()) break;
            (void)parsers_[&s].feed(*chunk, [&](const net::sse_event& e) { out.push_back(e); });
        }
        return out;
    }

    std::int64_t publish(const std::string& org, boost::json::object config)
    {
        auto r = admin_call("PublishConfig", {{"orgId", org}, {"config", std::move(config)}});
        BOOST_TEST_REQUIRE(r.has_value(), r.error().message);
        return std::stoll(std::string(r->at("configUpdatedAt").as_string()));
    }

    [[nodiscard]] gateway::service& service() { return *svc_; }
    [[nodiscard]] gateway::store& store() { return *db_; }
    /// Every storage call throws while down, as a database that went away.
    void set_storage_down(bool down) { db_->down = down; }
    [[nodiscard]] loopback_server& server() { return *srv_; }
    [[nodiscard]] net::http_client& http() { return *http_; }

    temp_dir dir;
    log_capture logs;
    std::atomic<std::int64_t> now{1'795'000'000'000};
    asio::io_context ioc;
    secret admin{"test-admin-token"};

private:
    gateway::gateway_options opts_;
    net::server_options server_opts_;
    std::optional<pki_files> pki_;
    asio::thread_pool pool_{1};
    std::unique_ptr<fixture_backend> backend_ = make_fixture_backend();
    std::unique_ptr<outage_store> db_;
    std::unique_ptr<gateway::service> svc_;
    std::unique_ptr<loopback_server> srv_;
    std::unique_ptr<net::http_client> http_;
    std::unique_ptr<net::rpc_client> rpc_;
    std::map<const net::body_stream*, net::sse_parser> parsers_;  // one per open stream
};

}  // namespace tether::test
