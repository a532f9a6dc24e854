#include "gateway/sqlite_storage.hpp"
#include "gateway/sqlite_store.hpp"
#include "support/fixture_backend.hpp"

#include <fstream>
#include <iterator>

namespace tether::test {

namespace {

class sqlite_backend final : public fixture_backend {
public:
    gateway::store& open(boost::asio::io_context&, const std::filesystem::path& dir,
                         boost::asio::any_io_executor storage, const log::logger&) override
    {
        file_ = std::make_unique<gateway::sqlite_storage>(dir / "tether.db");
        store_ = std::make_unique<gateway::sqlite_store>(*file_, std::move(storage));
        return *store_;
    }
    void start_feed(boost::asio::io_context&) override {}
    void stop_feed(boost::asio::io_context&) override {}
    void close() override
    {
        store_.reset();
        file_.reset();
    }
    std::string stored_bytes(const std::filesystem::path& dir) override
    {
        std::string all;
        for (const auto& f : std::filesystem::directory_iterator(dir)) {
            std::ifstream in(f.path(), std::ios::binary);
            all.append((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        }
        return all;
    }

private:
    std::unique_ptr<gateway::sqlite_storage> file_;
    std::unique_ptr<gateway::sqlite_store> store_;
};

}  // namespace

std::unique_ptr<fixture_backend> make_fixture_backend()
{
    return std::make_unique<sqlite_backend>();
}

}  // namespace tether::test
