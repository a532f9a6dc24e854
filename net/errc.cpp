#include "net/errc.hpp"

#include <string>

namespace tether::net {

namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "tether.net"; }
    std::string message(int ev) const override
    {
        switch (static_cast<errc>(ev)) {
            case errc::event_too_large:
                return "event exceeds the maximum event size";
            case errc::body_too_large:
                return "body exceeds its size limit";
            case errc::header_too_large:
                return "header exceeds its size limit";
            case errc::url_refused:
                return "URL refused by policy";
            case errc::bad_status:
                return "unexpected HTTP status";
            case errc::not_event_stream:
                return "response is not text/event-stream";
            case errc::stream_ended:
                return "server ended the stream (204): do not reconnect";
            case errc::redirect_refused:
                return "redirect refused";
            case errc::timeout:
                return "timed out";
            case errc::unreachable:
                return "no candidate URL is reachable";
            case errc::bad_response:
                return "malformed HTTP response";
            case errc::no_credentials:
                return "could not obtain credentials for the request";
            case errc::tls_expired:
                return "TLS: the server's certificate has expired or is not yet valid (check both clocks)";
            case errc::tls_wrong_host:
                return "TLS: the server's certificate is not valid for this host name";
            case errc::tls_unknown_ca:
                return "TLS: the server's certificate is not signed by a trusted CA (see --ca-file)";
            case errc::tls_untrusted:
                return "TLS: the server's certificate failed verification";
            case errc::credentials_refused:
                return "the credentials for the request were refused for good";
            case errc::unsafe_response:
                return "the upstream's answer is unsafe to relay";
            case errc::unwritable_message:
                return "the message holds a field that cannot be written safely";
            case errc::not_loopback:
                return "plain http is allowed only to loopback, and the host name resolved to no loopback "
                       "address (check /etc/hosts, or use https)";
        }
        return "unknown tether.net error";
    }
};

}  // namespace

const boost::system::error_category& net_category() noexcept
{
    static const category instance;
    return instance;
}

}  // namespace tether::net
