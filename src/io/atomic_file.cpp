// Implementation of AtomicOutput (see atomic_file.hpp).
#include "io/atomic_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.hpp"

namespace pfcr {

AtomicOutput::AtomicOutput(std::string final_path) : final_(std::move(final_path)) {
    const auto parent = std::filesystem::path(final_).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        check(!ec, final_, ": cannot create directory ", parent.string(), ": ", ec.message());
    }
    temp_ = final_ + ".tmp." + std::to_string(::getpid());
}

AtomicOutput::~AtomicOutput() {
    if (!committed_) std::remove(temp_.c_str());
}

void AtomicOutput::commit() {
    const int fd = ::open(temp_.c_str(), O_RDONLY);
    const int open_err = errno;
    check(fd >= 0, temp_, ": cannot reopen for fsync: ", std::strerror(open_err));
    ::fsync(fd);
    ::close(fd);
    const int rc = std::rename(temp_.c_str(), final_.c_str());
    const int err = errno; // read before building the message: argument order is unspecified
    check(rc == 0, "cannot rename ", temp_, " to ", final_, ": ", std::strerror(err));
    committed_ = true;
}

void write_text_file_atomic(const std::string& path, const std::string& contents) {
    AtomicOutput out(path);
    {
        std::ofstream f(out.temp_path(), std::ios::binary | std::ios::trunc);
        check(bool(f), out.temp_path(), ": cannot open for writing");
        f << contents;
        f.close();
        check(bool(f), out.temp_path(), ": write failed");
    }
    out.commit();
}

} // namespace pfcr
