// Minimal run logger: timestamped lines to stderr (and optionally a log file) with a rank
// prefix. A Logger is passed explicitly through the run context; there is no global logger.
// `info` is for one voice (the CLI makes every rank but 0 quiet); `progress` is for work each
// rank does on its own (fine-tuning its clients) and prints on every rank unless -q.
#pragma once

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace pfcr {

class Logger {
public:
    // `quiet`: no info lines; `progress_everywhere`: progress lines even when quiet (the CLI
    // sets it on ranks other than 0 unless -q).
    explicit Logger(int rank = 0, bool quiet = false, bool progress_everywhere = false)
        : rank_(rank), quiet_(quiet), progress_(!quiet || progress_everywhere) {}
    // Also append every line to `path` (created or truncated).
    void tee_to(const std::string& path);
    void info(const std::string& msg) const;
    void warn(const std::string& msg) const;
    void progress(const std::string& msg) const;
    int rank() const { return rank_; }

private:
    void emit(const char* level, const std::string& msg, bool show) const;
    int rank_;
    bool quiet_;
    bool progress_;
    std::shared_ptr<std::ofstream> file_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Wall-clock stopwatch for phase timings.
class Stopwatch {
public:
    Stopwatch() : start_(std::chrono::steady_clock::now()) {}
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    void reset() { start_ = std::chrono::steady_clock::now(); }

private:
    std::chrono::steady_clock::time_point start_;
};

// "2026-11-26T14:21:31Z"
std::string utc_timestamp();

} // namespace pfcr
