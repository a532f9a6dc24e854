#include "base/log.hpp"

#include <boost/json/serialize.hpp>

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <deque>
#include <thread>
#include <utility>

namespace tether::log {

std::optional<level> parse_level(std::string_view s) noexcept
{
    if (s == "debug") return level::debug;
    if (s == "info") return level::info;
    if (s == "warn" || s == "warning") return level::warn;
    if (s == "error") return level::error;
    return std::nullopt;
}

std::optional<format> parse_format(std::string_view s) noexcept
{
    if (s == "text") return format::text;
    if (s == "json") return format::json;
    return std::nullopt;
}

std::string_view to_string(level l) noexcept
{
    switch (l) {
        case level::debug:
            return "debug";
        case level::info:
            return "info";
        case level::warn:
            return "warn";
        case level::error:
            return "error";
    }
    return "?";
}

sink stderr_sink()
{
    return [](std::string_view line) {
        std::string buf;
        buf.reserve(line.size() + 1);
        buf.append(line).push_back('\n');
        const char* p = buf.data();
        std::size_t left = buf.size();
        while (left > 0) {
            const ssize_t n = ::write(STDERR_FILENO, p, left);
            if (n <= 0) return;  // stderr gone: nowhere left to report it
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    };
}

namespace {

std::string utc_now()
{
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
    const std::time_t t = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

bool needs_quotes(std::string_view s)
{
    if (s.empty()) return true;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= ' ' || c == '"' || c == '=' || c == '\\' || u >= 0x7f) return true;
    }
    return false;
}

}  // namespace

std::string render(format fmt, std::string_view timestamp, level l, std::string_view event, const fields& f)
{
    if (fmt == format::json) {
        boost::json::object line;
        line.reserve(f.size() + 3);
        line["ts"] = timestamp;
        line["level"] = to_string(l);
        line["event"] = event;
        for (const auto& kv : f) line[kv.key()] = kv.value();
        return boost::json::serialize(line);
    }
    std::string out;
    out.append(timestamp).push_back(' ');
    out.append(to_string(l));
    out.append(6 - to_string(l).size(), ' ');
    out.append(event);
    for (const auto& kv : f) {
        out.push_back(' ');
        out.append(kv.key()).push_back('=');
        const auto& v = kv.value();
        if (v.is_string() && !needs_quotes(v.get_string()))
            out.append(v.get_string());
        else
            out.append(boost::json::serialize(v));  // quoted and escaped: data, never markup
    }
    return out;
}

bool throttle::allow(std::uint64_t& suppressed) noexcept
{
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock(mutex_);
    if (now < next_) {
        ++dropped_;
        return false;
    }
    next_ = now + interval_;
    suppressed = std::exchange(dropped_, 0);
    return true;
}

struct background_stderr::state {
    format fmt;
    std::size_t max_bytes;
    std::mutex m;
    std::condition_variable wake, idle;
    std::deque<std::string> queue;
    std::size_t queued_bytes = 0;
    std::uint64_t dropped = 0;
    std::uint64_t dropped_reported = 0;
    bool writing = false;
    bool stop = false;

    void run()
    {
        const auto out = stderr_sink();
        std::unique_lock lock(m);
        for (;;) {
            wake.wait(lock, [this] { return stop || !queue.empty(); });
            if (queue.empty() && stop) return;
            std::deque<std::string> batch;
            batch.swap(queue);
            queued_bytes = 0;
            const auto lost = dropped - dropped_reported;
            dropped_reported = dropped;
            writing = true;
            lock.unlock();
            if (lost > 0)
                out(render(fmt, utc_now(), level::warn, "log.dropped",
                           {{"lines", lost}, {"reason", "stderr was not read; lines were dropped"}}));
            for (const auto& line : batch) out(line);
            lock.lock();
            writing = false;
            idle.notify_all();
        }
    }
};

background_stderr::background_stderr(format fmt, std::size_t max_bytes) : state_(std::make_shared<state>())
{
    state_->fmt = fmt;
    state_->max_bytes = max_bytes;
    // The thread holds the state: it may outlive this object when stderr
    // never drains (it is then ended with the process).
    // The writer takes no process signals: started with every signal
    // blocked, it inherits the mask, so SIGTERM and SIGCHLD go to threads
    // that handle them (`tether exec` blocks its forwarded signals until its
    // handler is in place; a writer thread taking SIGTERM meanwhile would
    // have killed the process with the default action).
    sigset_t all, previous;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous);
    std::thread([s = state_] { s->run(); }).detach();
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

background_stderr::~background_stderr()
{
    (void)flush(std::chrono::seconds(1));
    const std::lock_guard lock(state_->m);
    state_->stop = true;
    state_->wake.notify_one();
}

void background_stderr::push(std::string_view line)
{
    const std::lock_guard lock(state_->m);
    if (state_->queued_bytes + line.size() > state_->max_bytes) {
        ++state_->dropped;
        return;
    }
    state_->queued_bytes += line.size();
    state_->queue.emplace_back(line);
    state_->wake.notify_one();
}

bool background_stderr::flush(std::chrono::milliseconds limit)
{
    std::unique_lock lock(state_->m);
    return state_->idle.wait_for(lock, limit, [this] { return state_->queue.empty() && !state_->writing; });
}

std::uint64_t background_stderr::dropped() const
{
    const std::lock_guard lock(state_->m);
    return state_->dropped;
}

logger::logger(level min, format fmt, sink out) : min_(min), fmt_(fmt), out_(std::move(out)) {}

logger::logger(level min, format fmt, std::shared_ptr<background_stderr> out)
    : min_(min), fmt_(fmt), background_(std::move(out))
{
    out_ = [b = background_.get()](std::string_view line) {
        b->push(line);
    };
}

void logger::flush(std::chrono::milliseconds limit) const
{
    if (background_) (void)background_->flush(limit);
}

void logger::write(level l, std::string_view event, fields f) const
{
    if (!enabled(l)) return;
    const std::string line = render(fmt_, utc_now(), l, event, f);
    const std::lock_guard lock(*mutex_);
    out_(line);
}

}  // namespace tether::log
