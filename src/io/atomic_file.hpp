// Write-to-temp-then-rename for every output file, so a crash or an error never leaves a
// half-written file under the final name. Not thread-safe; one writer per final path.
#pragma once

#include <string>

namespace pfcr {

class AtomicOutput {
public:
    // Creates parent directories of `final_path`; the temp file is `<final>.tmp.<pid>`.
    explicit AtomicOutput(std::string final_path);
    ~AtomicOutput(); // removes the temp file unless commit() succeeded
    AtomicOutput(const AtomicOutput&) = delete;
    AtomicOutput& operator=(const AtomicOutput&) = delete;

    const std::string& temp_path() const { return temp_; }
    const std::string& final_path() const { return final_; }
    // fsyncs and renames the temp file onto the final path (atomic on POSIX file systems).
    void commit();

private:
    std::string final_;
    std::string temp_;
    bool committed_ = false;
};

// Writes a whole text file atomically.
void write_text_file_atomic(const std::string& path, const std::string& contents);

// Start-up check of an output directory named by config key `key`: it is a directory or can be
// created (its nearest existing ancestor is a writable directory). Touches nothing; throws
// Error naming the key and the path otherwise ("... exists and is not a directory").
void check_output_dir(const std::string& path, const std::string& key);

// " (the file system of DIR is full: N bytes free)" when the file system holding `path` (a
// file, or its directory if the file does not exist) has less than 1 MiB free, else "": for
// messages of failed writes whose library (HDF5, MPI-IO) does not say why they failed.
std::string disk_full_note(const std::string& path);

} // namespace pfcr
