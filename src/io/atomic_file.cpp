// Implementation of AtomicOutput (see atomic_file.hpp).
#include "io/atomic_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/error.hpp"

namespace pfcr {

AtomicOutput::AtomicOutput(std::string final_path) : final_(std::move(final_path)) {
    const auto parent = std::filesystem::path(final_).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        check_io(!ec, final_, ": cannot create directory ", parent.string(), ": ", ec.message());
    }
    temp_ = final_ + ".tmp." + std::to_string(::getpid());
}

AtomicOutput::~AtomicOutput() {
    if (!committed_) std::remove(temp_.c_str());
}

void AtomicOutput::commit() {
    const int fd = ::open(temp_.c_str(), O_RDONLY);
    const int open_err = errno;
    check_io(fd >= 0, temp_, ": cannot reopen for fsync: ", std::strerror(open_err));
    const int sync_rc = ::fsync(fd); // a delayed write error (ENOSPC on NFS, EIO) shows here
    const int sync_err = errno;
    ::close(fd);
    check_io(sync_rc == 0, temp_, ": fsync failed: ", std::strerror(sync_err));
    const int rc = std::rename(temp_.c_str(), final_.c_str());
    const int err = errno; // read before building the message: argument order is unspecified
    check_io(rc == 0, "cannot rename ", temp_, " to ", final_, ": ", std::strerror(err));
    committed_ = true;
}

void check_output_dir(const std::string& path, const std::string& key) {
    namespace fs = std::filesystem;
    check(!path.empty(), key, ": empty path");
    std::error_code ec;
    fs::path p = fs::absolute(path, ec);
    check(!ec, key, " = ", path, ": ", ec.message());
    if (fs::exists(p, ec)) {
        check(fs::is_directory(p, ec), key, " = ", path, ": exists and is not a directory");
        const int rc = ::access(p.c_str(), W_OK | X_OK);
        const int err = errno; // before the message's arguments are evaluated
        check(rc == 0, key, " = ", path, ": directory is not writable: ", std::strerror(err));
        return;
    }
    fs::path up = p.parent_path();
    while (!up.empty() && !fs::exists(up, ec) && up != up.root_path()) up = up.parent_path();
    check(fs::is_directory(up, ec), key, " = ", path, ": cannot be created: ", up.string(),
          " is not a directory");
    const int rc = ::access(up.c_str(), W_OK | X_OK);
    const int err = errno;
    check(rc == 0, key, " = ", path, ": cannot be created in ", up.string(), ": ",
          std::strerror(err));
}

std::string disk_full_note(const std::string& path) {
    std::filesystem::path dir(path);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) dir = dir.parent_path();
    if (dir.empty()) dir = ".";
    struct statvfs sv {};
    if (::statvfs(dir.c_str(), &sv) != 0) return "";
    const long long avail = (long long)(sv.f_bavail) * (long long)(sv.f_frsize);
    if (avail >= (1LL << 20)) return "";
    return " (the file system of " + dir.string() + " is full: " + std::to_string(avail) +
           " bytes free)";
}

void write_text_file_atomic(const std::string& path, const std::string& contents) {
    AtomicOutput out(path);
    {
        // POSIX calls, not a stream: the message must say why (errno) a write failed.
        const int fd = ::open(out.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int open_err = errno;
        check_io(fd >= 0, out.temp_path(), ": cannot open for writing: ", std::strerror(open_err));
        size_t done = 0;
        while (done < contents.size()) {
            const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
            if (n < 0 && errno == EINTR) continue;
            const int err = errno;
            if (n <= 0) {
                ::close(fd);
                fail_io(out.temp_path(), ": write failed after ", done, " of ", contents.size(),
                        " bytes: ", n < 0 ? std::strerror(err) : "no progress");
            }
            done += size_t(n);
        }
        const int rc = ::close(fd);
        const int err = errno;
        check_io(rc == 0, out.temp_path(), ": close failed: ", std::strerror(err));
    }
    out.commit();
}

} // namespace pfcr
