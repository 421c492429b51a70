// Implementation of the run logger (see log.hpp).
#include "core/log.hpp"

#include <cstdio>
#include <ctime>

#include "core/error.hpp"

namespace pfcr {

void Logger::tee_to(const std::string& path) {
    auto f = std::make_shared<std::ofstream>(path, std::ios::trunc);
    check(bool(*f), "cannot open log file ", path);
    file_ = std::move(f);
}

void Logger::emit(const char* level, const std::string& msg, bool show) const {
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    char prefix[64];
    std::snprintf(prefix, sizeof prefix, "[%8.2fs] [rank %d] %s", t, rank_, level);
    // One fputs of the whole line: lines of several ranks interleave whole, not mid-line.
    if (show) std::fputs((prefix + msg + "\n").c_str(), stderr);
    if (file_) *file_ << prefix << msg << '\n' << std::flush;
}

void Logger::info(const std::string& msg) const {
    emit("", msg, !quiet_);
}
void Logger::progress(const std::string& msg) const {
    emit("", msg, progress_);
}
void Logger::warn(const std::string& msg) const {
    emit("warning: ", msg, !quiet_);
}

std::string utc_timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

} // namespace pfcr
