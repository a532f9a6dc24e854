#include "app/gateway/commands.hpp"

namespace tether::app {

namespace {

constexpr cli::flag server{"server", "URL", "gateway base URL", "http://127.0.0.1:8443"};
constexpr cli::flag admin_token_file{"admin-token-file", "FILE", "file holding the admin token",
                                     "./tether-data/admin.token"};
constexpr cli::flag ca_file{"ca-file", "FILE",
                            "PEM bundle of CAs trusted for https (instead of the system store)"};
constexpr cli::flag json{"json", "", "print JSON"};

const std::vector<subcommand>& table()
{
    static const std::vector<subcommand> cmds = {
        {{"serve",
          "Run the control plane: node and admin RPCs, event streams.",
          {{"listen", "HOST:PORT", "address to listen on (plain HTTP only on loopback)", "127.0.0.1:8443"},
           {"data-dir", "DIR", "where the embedded database and admin token live", "./tether-data"},
           {.name = "database",
            .value_name = "URL",
            .help = "PostgreSQL (postgres://... or a libpq connection string) shared by replicas; absent: "
                    "the embedded SQLite file in --data-dir (better in TETHER_DATABASE, the password in a "
                    "passfile: a command line is readable by every user of the machine)",
            .secret = true},
           {"db-pool-size", "N", "PostgreSQL connections per replica (plus one for LISTEN)", "4"},
           {"db-timeout", "DURATION",
            "PostgreSQL connect, pool-wait and statement timeout (the server's statement_timeout on pooled "
            "connections), 100ms to 24h",
            "5s"},
           {"tls-cert", "FILE", "PEM certificate chain (required off loopback)"},
           {"tls-key", "FILE", "PEM private key for --tls-cert"},
           {"admin-token-file", "FILE", "admin token file, created 0600 when absent", "DIR/admin.token"},
           {"threads", "N", "event-loop threads", "1"},
           {"stream-limit-per-ip", "N", "open event streams allowed per client address", "20"},
           {"stream-limit", "N", "open event streams allowed in total", "10000"},
           {"auth-failures-per-minute", "N",
            "failed Enroll/BeginAuth/CompleteAuth from one address before it is refused for the minute",
            "20"},
           {"admin-stream-limit-per-ip", "N", "open admin event streams allowed per client address", "8"},
           {"admin-stream-limit", "N", "open admin event streams allowed in total", "64"},
           {"max-connections-per-ip", "N", "open connections allowed per client address (streams included)",
            "256"},
           {"proxy-protocol-from", "CIDR[,CIDR...]",
            "load balancers whose connections may begin with a PROXY protocol header (v1 or v2): the "
            "client it names is the address the per-address limits and logs use"},
           {"drain-timeout", "DURATION", "how long connections may take to close on SIGINT/SIGTERM", "10s"},
           {"console-secure-cookie", "",
            "mark the web console's cookie Secure without --tls-cert (TLS ends at a balancer in front)"}}},
         gateway_serve},
        {{"migrate",
          "Apply the PostgreSQL schema migrations and exit (serve applies them too).",
          {{.name = "database",
            .value_name = "URL",
            .help = "PostgreSQL URI or libpq connection string (better in TETHER_DATABASE)",
            .secret = true},
           {"db-timeout", "DURATION", "connect timeout", "5s"}}},
         gateway_migrate},
        {{"backup",
          "Copy the embedded SQLite database to FILE (0600, whole or absent), while a gateway may be "
          "running on it.",
          {{"data-dir", "DIR", "the gateway's --data-dir", "./tether-data"}},
          "FILE"},
         gateway_backup},
        {{"admin", "Operator commands against a running gateway.", {server, admin_token_file, ca_file}},
         nullptr,
         {
             {{"create-enrollment-code",
               "Create an enrollment code; prints the code alone.",
               {{"org", "ORG", "organisation the node will belong to"},
                {"ttl", "DURATION", "how long the code stays valid, whole seconds up to 720h (30 days)",
                 "1h"},
                {"uses", "N",
                 "how many nodes it enrolls (a DaemonSet's nodes share one code), at most 100000", "1"}}},
              admin_create_enrollment_code},
             {{"revoke-enrollment-code",
               "Revoke an enrollment code before it expires (nodes it enrolled stay: revoke them one by "
               "one).",
               {{"code-file", "FILE", "file holding the code, - for stdin (never the command line)"},
                {"all-codes-of", "ORG",
                 "revoke every code of this organisation, when which one leaked is unknown"}}},
              admin_revoke_enrollment_code},
             {{"publish-config",
               "Publish an org's runtime config from FILE (or - for stdin); prints configUpdatedAt.",
               {{"org", "ORG", "organisation"},
                {"if-updated-at", "N",
                 "publish only if the org's latest config is still configUpdatedAt N, the one get-config "
                 "printed (0: it has none); else exit 1 and change nothing"}},
               "FILE|-"},
              admin_publish_config},
             {{"get-config",
               "Print an org's latest runtime config (the document alone; its configUpdatedAt on stderr).",
               {{"org", "ORG", "organisation"}, json}},
              admin_get_config},
             {{"nodes", "List nodes.", {{"org", "ORG", "only this organisation"}, json}}, admin_nodes},
             {{"revoke", "Revoke a node; its agent exits with status 3.", {}, "NODE_ID"}, admin_revoke},
             {{"forget-nodes",
               "Delete an org's nodes gone for good (offline at least --offline-for, revoked or not); one "
               "that comes back is refused like a revoked one and must enroll again.",
               {{"org", "ORG", "organisation"},
                {"offline-for", "DURATION", "last heard of at least this long ago, 1h to 720h (30 days)"}}},
              admin_forget_nodes},
             {{"rollout",
               "Print how far an org's latest config has rolled out; with --wait, exit 0 once every online "
               "node applied it, 1 at the timeout (naming the nodes behind).",
               {{"org", "ORG", "organisation"},
                {"wait", "DURATION", "follow the admin event stream for up to this long"},
                json}},
              admin_rollout},
         }},
    };
    return cmds;
}

}  // namespace

std::span<const subcommand> gateway_commands()
{
    return table();
}

}  // namespace tether::app
