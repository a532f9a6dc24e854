#include "app/agent/tasks/reload_task.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include <array>
#include <charconv>
#include <cstring>
#include <utility>

namespace tether::app {

using namespace std::chrono_literals;

namespace {

constexpr std::array<std::pair<std::string_view, int>, 16> signal_names{{{"HUP", SIGHUP},
                                                                         {"INT", SIGINT},
                                                                         {"QUIT", SIGQUIT},
                                                                         {"KILL", SIGKILL},
                                                                         {"USR1", SIGUSR1},
                                                                         {"USR2", SIGUSR2},
                                                                         {"TERM", SIGTERM},
                                                                         {"CONT", SIGCONT},
                                                                         {"STOP", SIGSTOP},
                                                                         {"TSTP", SIGTSTP},
                                                                         {"WINCH", SIGWINCH},
                                                                         {"ALRM", SIGALRM},
                                                                         {"PIPE", SIGPIPE},
                                                                         {"TTIN", SIGTTIN},
                                                                         {"TTOU", SIGTTOU},
                                                                         {"URG", SIGURG}}};

}  // namespace

std::optional<int> parse_signal(std::string_view text)
{
    int n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && end == text.data() + text.size()) {
        if (n >= 1 && n < SIGRTMIN) return n;
        return std::nullopt;
    }
    if (text.starts_with("SIG")) text.remove_prefix(3);
    for (const auto& [name, signo] : signal_names)
        if (name == text) return signo;
    return std::nullopt;
}

std::optional<reload_policy> parse_reload_mode(std::string_view text)
{
    reload_policy p;
    if (text == "none") return p;
    if (text == "restart") {
        p.what = reload_policy::action::restart;
        return p;
    }
    if (text.starts_with("signal:")) {
        const auto s = parse_signal(text.substr(7));
        if (!s || *s == SIGKILL || *s == SIGSTOP) return std::nullopt;
        p.what = reload_policy::action::signal;
        p.signo = *s;
        return p;
    }
    return std::nullopt;
}

awaitable<void> reload_task::rendered_once()
{
    while (renderer_.rendered() == 0) co_await rendered_signal_.wait();
}

void reload_task::act(std::int64_t version)
{
    using action = reload_policy::action;
    if (d_.policy.what == action::none || !d_.child.running()) return;
    ++actions_;
    if (d_.policy.what == action::signal) {
        d_.log.info("exec.config_reload", {{"configUpdatedAt", version}, {"signal", d_.policy.signo}});
        d_.child.signal_child(d_.policy.signo);
    } else {
        d_.log.info("exec.config_restart", {{"configUpdatedAt", version}});
        d_.child.restart();
    }
}

awaitable<void> reload_task::run()
{
    using namespace asio::experimental::awaitable_operators;
    co_await asio::this_coro::throw_if_cancelled(false);
    const auto cs = co_await asio::this_coro::cancellation_state;
    const auto ex = co_await asio::this_coro::executor;
    const auto stopped = [&] {
        return cs.cancelled() != asio::cancellation_type::none;
    };
    // Taken before the first look: a change in between still wakes us.
    const auto changed = d_.store.watch(ex);
    timer quiet{ex};
    timer retry{ex};
    for (;;) {
        if (d_.store.updated_at() <= renderer_.rendered()) {
            co_await changed->wait();
            if (stopped()) co_return;
            continue;
        }
        // Debounce while a child runs (before it starts there is no one to
        // disturb: it reads the file when it starts).
        if (d_.policy.wait_min.count() > 0 && d_.child.running()) {
            const auto latest = std::chrono::steady_clock::now() + d_.policy.wait_max;
            for (;;) {
                const auto now = std::chrono::steady_clock::now();
                if (now >= latest) break;
                quiet.expires_after(
                    std::min<std::chrono::steady_clock::duration>(d_.policy.wait_min, latest - now));
                const auto woke = co_await (changed->wait() || quiet.async_wait(nothrow));
                if (stopped()) co_return;
                if (woke.index() == 1) break;  // quiet for MIN
            }
        }
        const auto cfg = d_.store.current();
        if (cfg->updated_at <= renderer_.rendered()) continue;  // an older one replaced it meanwhile
        const bool ok = co_await renderer_.render(cfg);
        if (stopped()) co_return;
        if (!ok) {
            // Nothing is signalled for a file the child cannot read; retried.
            retry.expires_after(5s);
            co_await retry.async_wait(nothrow);
            if (stopped()) co_return;
            continue;
        }
        rendered_signal_.notify();
        act(cfg->updated_at);
    }
}

}  // namespace tether::app
