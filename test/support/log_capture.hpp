// A logger whose lines land in memory, as parsed JSON, for assertions.
#pragma once

#include "base/log.hpp"

#include <boost/json/parse.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tether::test {

class log_capture {
public:
    explicit log_capture(log::level min = log::level::debug)
        : state_(std::make_shared<state>()),
          logger_(min, log::format::json, [s = state_](std::string_view line) {
              const std::lock_guard lock(s->m);
              s->lines.emplace_back(line);
          })
    {
    }

    [[nodiscard]] const log::logger& logger() const noexcept { return logger_; }

    [[nodiscard]] std::vector<boost::json::object> events(std::string_view name = {}) const
    {
        std::vector<boost::json::object> out;
        const std::lock_guard lock(state_->m);
        for (const auto& l : state_->lines) {
            auto o = boost::json::parse(l).as_object();
            if (name.empty() || o.at("event").as_string() == name) out.push_back(std::move(o));
        }
        return out;
    }

    [[nodiscard]] bool has(std::string_view name) const { return !events(name).empty(); }

    [[nodiscard]] std::string all() const
    {
        std::string out;
        const std::lock_guard lock(state_->m);
        for (const auto& l : state_->lines) out += l + "\n";
        return out;
    }

private:
    struct state {
        std::mutex m;
        std::vector<std::string> lines;
    };
    std::shared_ptr<state> state_;
    log::logger logger_;
};

}  // namespace tether::test
