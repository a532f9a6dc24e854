// Where `tether exec`'s broker gets the credential it puts in place of the
// sentinel: a private file, or the node's own session. Linux only.
#pragma once

#include "auth/broker.hpp"
#include "auth/session.hpp"
#include "base/log.hpp"
#include "base/secret.hpp"

#include <string>

namespace tether::app {

/// The credential file: ours, 0600 (or stricter), one line. Throws
/// usage_error naming `origin` (the flag or variable it came from).
secret read_credential_file(const std::string& path, const std::string& origin);

/// A fixed secret (from the credential file).
class file_credential final : public auth::credential_source {
public:
    explicit file_credential(secret s) : s_(std::move(s)) {}
    awaitable<result<secret>> get() override;
    awaitable<result<secret>> refresh(secret rejected) override;
    [[nodiscard]] const secret* fixed() const noexcept override { return &s_; }

private:
    secret s_;
};

/// The node's session token. A failed login keeps its Connect code in the
/// error the broker logs, and its message in a log line of its own.
class session_credential final : public auth::credential_source {
public:
    session_credential(auth::session_manager& s, const log::logger& log) : s_(s), log_(log) {}
    awaitable<result<secret>> get() override;
    awaitable<result<secret>> refresh(secret rejected) override;

private:
    result<secret> failed(const auth::session_error& e) const;

    auth::session_manager& s_;
    const log::logger& log_;
};

}  // namespace tether::app
