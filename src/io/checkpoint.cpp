// Checkpoint writer (collective, parallel HDF5) and reader (serial, read-only); see
// checkpoint.hpp for the protocol and docs/ARCHITECTURE.md §5 for the layout.
#include "io/checkpoint.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <utility>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint_schema.hpp"

namespace pfcr {
namespace fs = std::filesystem;

int64_t TensorSpec::size() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
}

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

h5::Shape to_h5(const std::vector<int64_t>& s) {
    return h5::Shape(s.begin(), s.end());
}

// ---------------------------------------------------------------------------- agreement

// FNV-1a over everything that must be identical on every rank.
struct Fingerprint {
    uint64_t h = 0xcbf29ce484222325ull;
    void bytes(const void* p, size_t n) {
        for (size_t i = 0; i < n; ++i)
            h = (h ^ static_cast<const unsigned char*>(p)[i]) * 0x100000001b3ull;
    }
    void add(int64_t v) { bytes(&v, sizeof v); }
    void add(const std::string& s) {
        add(int64_t(s.size()));
        bytes(s.data(), s.size());
    }
    void add(const TensorSpec& t) {
        add(t.name);
        add(int64_t(t.shape.size()));
        for (int64_t d : t.shape) add(d);
    }
};

uint64_t shared_fingerprint(const std::string& dir, const CheckpointContent& c, int keep) {
    Fingerprint f;
    const auto& h = c.header;
    f.add(dir);
    f.add(int64_t(keep));
    for (const auto* s : {&h.stage, &h.software_version, &h.config_yaml, &h.algorithm,
                          &h.prepared_fingerprint, &h.trace_sha256})
        f.add(*s);
    f.add(h.round);
    f.add(int64_t(h.seed));
    f.add(h.n_clients);
    f.add(int64_t(c.server.size()));
    for (const auto& t : c.server) f.add(t);
    f.add(int64_t(c.clients.size()));
    for (const auto& m : c.clients) {
        f.add(m.id);
        f.add(m.domain);
        f.add(m.shard);
        f.add(m.n_train_rows);
        for (const auto& [name, rows] : m.rows_override) {
            f.add(name);
            f.add(rows);
        }
        f.add(m.stage_state);
    }
    f.add(int64_t(c.client_tensors.size()));
    for (const auto& t : c.client_tensors) f.add(t);
    return f.h;
}

void check_specs(const std::vector<TensorSpec>& specs, const char* what) {
    std::set<std::string> seen;
    for (const auto& t : specs) {
        check(!t.name.empty() && t.name.front() != '/' && t.name.back() != '/' &&
                  t.name.find("//") == std::string::npos,
              "checkpoint: bad ", what, " tensor name '", t.name, "'");
        check(seen.insert(t.name).second, "checkpoint: ", what, " tensor '", t.name,
              "' listed twice");
        for (int64_t d : t.shape)
            check(d >= 0, "checkpoint: ", what, " tensor '", t.name, "' has shape ",
                  shape_text(t.shape));
    }
}

// Rank-local checks of the content; shared parts give the same verdict on every rank.
void check_content(const CheckpointContent& c, int keep, int rank) {
    const auto& h = c.header;
    check(keep >= 1, "checkpoint: keep = ", keep, ", must be >= 1");
    check(h.stage == ckpt::stage_pretrain || h.stage == ckpt::stage_finetune, "checkpoint: stage '",
          h.stage, "', expected 'pretrain' or 'finetune'");
    check(h.round >= 0, "checkpoint: round ", h.round, " < 0");
    check(h.seed <= uint64_t(INT64_MAX), "checkpoint: seed ", h.seed, " does not fit int64");
    check(h.n_clients == int64_t(c.clients.size()), "checkpoint: header.n_clients = ", h.n_clients,
          " but ", c.clients.size(), " clients are listed");
    std::set<int64_t> ids;
    for (const auto& m : c.clients) {
        check(m.id >= 0, "checkpoint: client id ", m.id, " < 0");
        check(ids.insert(m.id).second, "checkpoint: client id ", m.id, " listed twice");
    }
    check_specs(c.server, "server");
    check_specs(c.client_tensors, "client");
    for (const auto& t : c.client_tensors)
        check(t.name != ckpt::optim, "checkpoint: client tensor '", ckpt::optim,
              "' clashes with the optim group");
    if (rank == 0) {
        check(c.server_data.size() == c.server.size(), "checkpoint: ", c.server.size(),
              " server tensors but ", c.server_data.size(), " data pointers on rank 0");
        for (size_t i = 0; i < c.server.size(); ++i)
            check(c.server_data[i] || c.server[i].size() == 0, "checkpoint: server tensor '",
                  c.server[i].name, "' has no data on rank 0");
    }
    std::set<int64_t> owned;
    for (const auto& o : c.owned) {
        check(ids.count(o.id), "checkpoint: rank ", rank, " owns client ", o.id,
              ", which is not among the clients");
        check(owned.insert(o.id).second, "checkpoint: rank ", rank, " owns client ", o.id,
              " twice");
        if (o.fetch) {
            check(o.data.empty(), "checkpoint: rank ", rank, ", client ", o.id,
                  ": both data pointers and a fetch function");
            continue;
        }
        check(o.data.size() == c.client_tensors.size(), "checkpoint: rank ", rank, ", client ",
              o.id, ": ", o.data.size(), " data pointers for ", c.client_tensors.size(),
              " client tensors");
        for (size_t i = 0; i < o.data.size(); ++i)
            check(o.data[i] || c.client_tensors[i].size() == 0, "checkpoint: rank ", rank,
                  ", client ", o.id, ": tensor '", c.client_tensors[i].name, "' has no data");
    }
}

// Round of a complete checkpoint file name, or -1.
int64_t round_of(const std::string& file_name) {
    static const std::regex re(R"(round_(\d{6,})\.h5)");
    std::smatch m;
    if (!std::regex_match(file_name, m, re)) return -1;
    const auto r = parse_int(m[1].str());
    return r ? *r : -1;
}

// A temp file or space reservation left by a write that did not finish.
bool is_checkpoint_tmp(const std::string& file_name) {
    static const std::regex re(R"(round_\d{6,}\.h5\.(tmp|reserve))");
    return std::regex_match(file_name, re);
}

// The file's size, estimated from above: tensor bytes, attribute text, and a per-object
// allowance for HDF5's headers and B-trees (measured ~330 B per object; 1 KiB is generous).
struct SizeEstimate {
    int64_t data = 0, metadata = 0;
};
SizeEstimate estimate_size(const CheckpointContent& c) {
    SizeEstimate e;
    int64_t objects = 1 + 2 + int64_t(c.server.size());
    for (const auto& t : c.server) e.data += t.size() * int64_t(sizeof(float));
    e.metadata += int64_t(c.header.config_yaml.size() + c.header.algorithm.size() + 4096);
    for (const auto& m : c.clients) {
        for (const auto& t : c.client_tensors) {
            int64_t elems = t.size();
            for (const auto& [name, rows] : m.rows_override)
                if (name == t.name && !t.shape.empty() && t.shape[0] > 0)
                    elems = elems / t.shape[0] * rows;
            e.data += elems * int64_t(sizeof(float));
        }
        objects += 2 + int64_t(c.client_tensors.size());
        e.metadata += int64_t(m.domain.size() + m.stage_state.size()) + 256;
    }
    e.metadata += objects * 1024 + (int64_t(1) << 18);
    return e;
}

// Rank 0's space reservation for the metadata HDF5 writes when the file closes: a parallel
// file's close flushes its metadata cache with barriers between the ranks, and a rank whose
// write fails there leaves the others waiting forever. Holding `bytes` until just before the
// close means those writes find room even if the data writes filled the disk. Removed by
// release() or the destructor.
class SpaceReservation {
public:
    SpaceReservation() = default;
    SpaceReservation(std::string path, int64_t bytes) : path_(std::move(path)) {
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = errno;
        check_io(fd >= 0, path_, ": cannot create: ", std::strerror(err));
        const int rc = ::posix_fallocate(fd, 0, off_t(bytes)); // returns the error number
        ::close(fd);
        if (rc != 0) {
            release();
            fail_io(path_, ": cannot reserve ", bytes, " bytes: ", std::strerror(rc));
        }
    }
    SpaceReservation(const SpaceReservation&) = delete;
    SpaceReservation& operator=(const SpaceReservation&) = delete;
    SpaceReservation& operator=(SpaceReservation&& o) noexcept {
        release();
        path_ = std::exchange(o.path_, std::string());
        return *this;
    }
    ~SpaceReservation() { release(); }
    void release() {
        if (!path_.empty()) ::unlink(path_.c_str());
        path_.clear();
    }

private:
    std::string path_;
};

std::string mib_text(int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", double(bytes) / 1048576.0);
    return buf;
}

void fsync_path(const std::string& path, bool directory) {
    const int fd = ::open(path.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
    const int err = errno;
    check_io(fd >= 0, path, ": cannot open for fsync: ", std::strerror(err));
    const int rc = ::fsync(fd); // delayed write errors (NFS, Lustre: ENOSPC, EDQUOT) show here
    const int err2 = errno;
    ::close(fd);
    check_io(rc == 0, path, ": fsync failed: ", std::strerror(err2));
}

// Rank 0: leave the newest `keep` checkpoints (by round; `written` always stays) and no stale
// temp files.
void prune(const std::string& dir, const std::string& written, int keep) {
    std::vector<std::pair<int64_t, fs::path>> complete;
    std::vector<fs::path> stale;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (!e.is_regular_file()) continue;
        if (is_checkpoint_tmp(name)) {
            stale.push_back(e.path());
        } else if (const int64_t r = round_of(name); r >= 0 && name != written) {
            complete.emplace_back(r, e.path());
        }
    }
    std::sort(complete.begin(), complete.end(), std::greater<>());
    for (size_t i = size_t(keep - 1); i < complete.size(); ++i) stale.push_back(complete[i].second);
    for (const auto& p : stale) {
        std::error_code ec;
        fs::remove(p, ec);
        check(!ec, p.string(), ": cannot delete old checkpoint: ", ec.message());
    }
}

} // namespace

int64_t checkpoint_size_estimate(const CheckpointContent& c) {
    const SizeEstimate e = estimate_size(c);
    return e.data + e.metadata;
}

std::string checkpoint_file_name(int64_t round) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "round_%06lld.h5", static_cast<long long>(round));
    return buf;
}

std::string write_checkpoint(Comm& comm, const std::string& dir, const CheckpointContent& c,
                             int keep, const CheckpointFaults& faults) {
    const int rank = comm.rank(), size = comm.size();

    // 1. The content is valid and the shared parts are the same on every rank.
    agree_on_errors(comm, [&] { check_content(c, keep, rank); });
    {
        // Equal on every rank <=> max == min for both 32-bit halves (min = -max of negation).
        const uint64_t fp = shared_fingerprint(dir, c, keep);
        const int64_t hi = int64_t(fp >> 32), lo = int64_t(fp & 0xffffffffu);
        int64_t v[4] = {hi, lo, -hi, -lo};
        comm.allreduce_max(v, 4);
        check(v[0] == -v[2] && v[1] == -v[3], "checkpoint ", checkpoint_file_name(c.header.round),
              " in ", dir, ": ranks pass different headers, clients, tensor lists, dir or keep");
    }

    // 2. Per-client counters, known to the owner only: [step, rng_counter, owners] by client
    //    position, summed over ranks.
    const size_t n = c.clients.size();
    std::map<int64_t, size_t> position;
    for (size_t i = 0; i < n; ++i) position[c.clients[i].id] = i;
    std::vector<int64_t> counters(3 * n, 0);
    std::map<int64_t, const CheckpointContent::Owned*> mine;
    for (const auto& o : c.owned) {
        const size_t i = position.at(o.id);
        counters[3 * i] = o.adam_step;
        counters[3 * i + 1] = o.rng_counter;
        counters[3 * i + 2] = 1;
        mine[o.id] = &o;
    }
    if (n > 0) comm.allreduce_sum(counters.data(), int64_t(3 * n));
    for (size_t i = 0; i < n; ++i)
        check(counters[3 * i + 2] == 1, "checkpoint: client ", c.clients[i].id, " is owned by ",
              counters[3 * i + 2], " ranks, expected exactly 1");

    // 3. Header as written: world size from comm, creation time chosen once by rank 0 (its
    //    header's, or now) and broadcast: ranks stamping their own clocks would disagree
    //    whenever they straddle a second boundary, so the time is not part of the agreement.
    CheckpointHeader h = c.header;
    h.world_size_at_write = size;
    {
        char stamp[64] = {};
        if (rank == 0)
            std::snprintf(stamp, sizeof stamp, "%s",
                          h.created_utc.empty() ? utc_timestamp().c_str() : h.created_utc.c_str());
        comm.broadcast(stamp, int64_t(sizeof stamp), 0);
        h.created_utc = stamp;
    }

    const std::string name = checkpoint_file_name(h.round);
    const std::string final_path = (fs::path(dir) / name).string();
    const std::string tmp_path = final_path + ".tmp";
    // Room for the file, checked and the metadata part reserved before it is created: a disk
    // that fills during the parallel close would hang the job (SpaceReservation).
    const SizeEstimate need = estimate_size(c);
    SpaceReservation reserve;
    agree_on_errors(comm, [&] {
        if (rank != 0) return;
        std::error_code ec;
        fs::create_directories(dir, ec);
        check_io(!ec, dir, ": cannot create checkpoint directory: ", ec.message());
        const std::string keeps = latest_checkpoint(dir).empty()
                                      ? std::string()
                                      : "; " +
                                            fs::path(latest_checkpoint(dir)).filename().string() +
                                            " stays the newest checkpoint";
        struct statvfs sv {};
        if (::statvfs(dir.c_str(), &sv) == 0) {
            const int64_t avail = int64_t(sv.f_bavail) * int64_t(sv.f_frsize);
            // Files the caller deletes during the write count as free, but the metadata's
            // reservation must fit now.
            check_io(
                avail + c.reclaimable_bytes >= need.data + need.metadata && avail >= need.metadata,
                dir, ": no room for checkpoint ", name, ": it needs about ",
                mib_text(need.data + need.metadata), " MiB, ", mib_text(avail), " MiB are free",
                c.reclaimable_bytes > 0
                    ? " (+" + mib_text(c.reclaimable_bytes) + " MiB freed while writing)"
                    : std::string(),
                keeps);
        }
        try {
            reserve = SpaceReservation(final_path + ".reserve", need.metadata);
        } catch (const IoError& e) {
            fail_io(e.what(), keeps);
        }
    });

    // 4. The file. Metadata calls are collective (identical on every rank, in client-id
    //    order); data writes are independent and their errors are collected, not thrown, so
    //    that no rank leaves the collective sequence early.
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return c.clients[a].id < c.clients[b].id; });
    std::string error;
    int64_t barrier = 0;
    bool io_error = false; // a write or the file itself failed (exit_io_error), not the content
    auto write_data = [&](h5::Dataset& ds, const TensorSpec& t, const float* data) {
        if (t.size() == 0 || !error.empty()) return;
        try {
            ds.write(data);
        } catch (const std::exception& e) {
            error = e.what();
            io_error = true;
        }
    };
    try {
        // Parallel HDF5 over MPI-IO, or serial HDF5 for a one-rank communicator without MPI.
        const std::optional<MPI_Comm> mpi = comm.parallel_io_handle();
        h5::File f = mpi ? h5::File::create_parallel(tmp_path, *mpi) : h5::File::create(tmp_path);
        // Declared after f, so destroyed before it: an exception's unwinding releases the
        // reservation before f's destructor closes the file (and flushes its metadata).
        const struct ReleaseFirst {
            SpaceReservation& r;
            ~ReleaseFirst() { r.release(); }
        } release_first{reserve};
        f.set_attr(ckpt::attr::format, checkpoint_format);
        f.set_attr(ckpt::attr::format_version, checkpoint_format_version);
        f.set_attr(ckpt::attr::stage, h.stage);
        f.set_attr(ckpt::attr::round, h.round);
        f.set_attr(ckpt::attr::seed, int64_t(h.seed));
        f.set_attr(ckpt::attr::n_clients, h.n_clients);
        f.set_attr(ckpt::attr::world_size_at_write, int64_t(h.world_size_at_write));
        f.set_attr(ckpt::attr::software_version, h.software_version);
        f.set_attr(ckpt::attr::created_utc, h.created_utc);
        f.set_attr(ckpt::attr::config_yaml, h.config_yaml);
        f.set_attr(ckpt::attr::algorithm, h.algorithm);
        f.set_attr(ckpt::attr::prepared_fingerprint, h.prepared_fingerprint);
        if (!h.trace_sha256.empty()) f.set_attr(ckpt::attr::trace_sha256, h.trace_sha256);
        {
            h5::Group server = f.create_group(ckpt::server);
            for (size_t t = 0; t < c.server.size(); ++t) {
                h5::Dataset ds =
                    server.create_dataset<float>(c.server[t].name, to_h5(c.server[t].shape));
                if (rank == 0) write_data(ds, c.server[t], c.server_data[t]);
            }
            h5::Group clients = f.create_group(ckpt::clients);
            for (size_t k = 0; k < n; ++k) {
                const size_t i = order[k];
                const ClientMeta& m = c.clients[i];
                h5::Group g = clients.create_group(std::to_string(m.id));
                g.set_attr(ckpt::attr::domain, m.domain);
                g.set_attr(ckpt::attr::shard, m.shard);
                g.set_attr(ckpt::attr::n_train_rows, m.n_train_rows);
                g.set_attr(ckpt::attr::rng_counter, counters[3 * i + 1]);
                if (!m.stage_state.empty()) g.set_attr(ckpt::attr::stage_state, m.stage_state);
                g.create_group(ckpt::optim).set_attr(ckpt::attr::step, counters[3 * i]);
                const auto it = mine.find(m.id);
                std::vector<const float*> fetched;
                if (it != mine.end() && it->second->fetch && error.empty()) {
                    try { // collected like a write error: the collective sequence goes on
                        fetched = it->second->fetch();
                        check(fetched.size() == c.client_tensors.size(), "checkpoint: client ",
                              m.id, ": fetch gave ", fetched.size(), " data pointers for ",
                              c.client_tensors.size(), " client tensors");
                        for (size_t t = 0; t < fetched.size(); ++t)
                            check(fetched[t] || c.client_tensors[t].size() == 0,
                                  "checkpoint: client ", m.id, ": fetch gave no data for '",
                                  c.client_tensors[t].name, "'");
                    } catch (const std::exception& e) {
                        error = e.what();
                    }
                }
                for (size_t t = 0; t < c.client_tensors.size(); ++t) {
                    TensorSpec spec = c.client_tensors[t];
                    for (const auto& [name, rows] : m.rows_override)
                        if (name == spec.name && !spec.shape.empty()) spec.shape[0] = rows;
                    h5::Dataset ds = g.create_dataset<float>(spec.name, to_h5(spec.shape));
                    if (it == mine.end()) continue;
                    if (!it->second->fetch)
                        write_data(ds, spec, it->second->data[t]);
                    else if (error.empty())
                        write_data(ds, spec, fetched[t]);
                }
                if (faults.mid_write && k == n / 2) faults.mid_write(h.round);
            }
            if (faults.mid_write && n == 0) faults.mid_write(h.round);
        }
        // Every rank's data writes are done before the reserved room is given back (a
        // collective like the close that follows; a rank that threw above is in neither).
        if (mpi) comm.allreduce_max(&barrier, 1);
        reserve.release(); // the close's metadata writes get the reserved room
        f.close();
    } catch (const IoError& e) { // creating or closing the file, a metadata write
        if (error.empty()) {
            error = e.what();
            io_error = true;
        }
    } catch (const std::exception& e) {
        if (error.empty()) error = e.what();
    }
    try {
        agree_on_errors(comm, [&] {
            if (error.empty()) return;
            const std::string keeps =
                latest_checkpoint(dir).empty()
                    ? std::string()
                    : "; " + fs::path(latest_checkpoint(dir)).filename().string() +
                          " stays the newest checkpoint";
            if (io_error)
                fail_io("checkpoint ", name, " could not be written: ", error, disk_full_note(dir),
                        keeps);
            fail(error);
        });
    } catch (...) {
        if (rank == 0) std::remove(tmp_path.c_str());
        throw;
    }

    // 5. Every rank has closed the file (agree is a barrier): publish it atomically.
    agree_on_errors(comm, [&] {
        if (rank != 0) return;
        try {
            fsync_path(tmp_path, false);
        } catch (...) {
            std::remove(tmp_path.c_str());
            throw;
        }
        const int rc = std::rename(tmp_path.c_str(), final_path.c_str());
        const int err = errno;
        if (rc != 0) std::remove(tmp_path.c_str());
        check_io(rc == 0, "cannot rename ", tmp_path, " to ", final_path, ": ", std::strerror(err));
        fsync_path(dir, true);
    });

    // 6. Keep the newest `keep`.
    agree_on_errors(comm, [&] {
        if (rank == 0) prune(dir, name, keep);
    });
    return final_path;
}

std::string latest_checkpoint(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return "";
    int64_t best = -1;
    std::string best_name;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        const int64_t r = round_of(name);
        if (r > best && e.is_regular_file()) {
            best = r;
            best_name = name;
        }
    }
    return best < 0 ? "" : (fs::path(dir) / best_name).string();
}

// ---------------------------------------------------------------------------- reader

namespace {

h5::File open_checkpoint(const std::string& path) {
    check(fs::exists(path), path, ": no such file (expected a ", checkpoint_format, " file)");
    check(h5::is_hdf5(path), path, ": not an HDF5 file (expected a ", checkpoint_format, " file)");
    h5::File f = h5::File::open_read(path);
    check(f.has_attr(ckpt::attr::format), path, ": no root attribute 'format', expected '",
          checkpoint_format, "'");
    const std::string format = f.attr_string(ckpt::attr::format);
    check(format == checkpoint_format, path, ": format '", format, "', expected '",
          checkpoint_format, "'");
    check(f.has_attr(ckpt::attr::format_version), path,
          ": no root attribute 'format_version', expected '", checkpoint_format_version, "'");
    const std::string version = f.attr_string(ckpt::attr::format_version);
    check(version == checkpoint_format_version, path, ": format_version '", version,
          "', expected '", checkpoint_format_version, "'");
    return f;
}

std::vector<TensorSpec> list_tensors(const h5::Group& g) {
    std::vector<TensorSpec> out;
    for (const auto& name : g.datasets()) {
        const h5::Shape s = g.shape(name);
        out.push_back({name, std::vector<int64_t>(s.begin(), s.end())});
    }
    return out;
}

} // namespace

CheckpointReader::CheckpointReader(const std::string& path)
    : path_(path), file_(open_checkpoint(path)) {
    const h5::File& f = file_;
    header_.stage = f.attr_string(ckpt::attr::stage);
    header_.round = f.attr_int(ckpt::attr::round);
    header_.seed = uint64_t(f.attr_int(ckpt::attr::seed));
    header_.n_clients = f.attr_int(ckpt::attr::n_clients);
    header_.world_size_at_write = int(f.attr_int(ckpt::attr::world_size_at_write));
    header_.software_version = f.attr_string(ckpt::attr::software_version);
    header_.created_utc = f.attr_string(ckpt::attr::created_utc);
    header_.config_yaml = f.attr_string(ckpt::attr::config_yaml);
    header_.algorithm =
        f.has_attr(ckpt::attr::algorithm) ? f.attr_string(ckpt::attr::algorithm) : "";
    header_.prepared_fingerprint = f.has_attr(ckpt::attr::prepared_fingerprint)
                                       ? f.attr_string(ckpt::attr::prepared_fingerprint)
                                       : "";
    header_.trace_sha256 =
        f.has_attr(ckpt::attr::trace_sha256) ? f.attr_string(ckpt::attr::trace_sha256) : "";
    check(f.has_group(ckpt::server), f.where(ckpt::server), ": group missing");
    const h5::Group clients = f.open_group(ckpt::clients);
    for (const auto& name : clients.children()) {
        const auto id = parse_int(name);
        check(id && *id >= 0 && std::to_string(*id) == name, clients.where(name),
              ": client group name is not a decimal id");
        const h5::Group g = clients.open_group(name);
        ClientMeta m;
        m.id = *id;
        m.domain = g.attr_string(ckpt::attr::domain);
        m.shard = g.attr_int(ckpt::attr::shard);
        m.n_train_rows = g.attr_int(ckpt::attr::n_train_rows);
        if (g.has_attr(ckpt::attr::stage_state))
            m.stage_state = g.attr_string(ckpt::attr::stage_state);
        clients_.push_back(std::move(m));
    }
    std::sort(clients_.begin(), clients_.end(),
              [](const ClientMeta& a, const ClientMeta& b) { return a.id < b.id; });
    check(int64_t(clients_.size()) == header_.n_clients, path, ": n_clients = ", header_.n_clients,
          " but /clients holds ", clients_.size(), " clients");
}

bool CheckpointReader::has_client(int64_t id) const {
    return std::binary_search(clients_.begin(), clients_.end(), ClientMeta{id, "", 0, 0, {}, {}},
                              [](const ClientMeta& a, const ClientMeta& b) { return a.id < b.id; });
}

h5::Group CheckpointReader::client_group(int64_t id) const {
    check(has_client(id), file_.where("clients/" + std::to_string(id)), ": no such client");
    return file_.open_group("clients/" + std::to_string(id));
}

std::vector<TensorSpec> CheckpointReader::server_tensors() const {
    return list_tensors(file_.open_group(ckpt::server));
}

std::vector<TensorSpec> CheckpointReader::client_tensors(int64_t id) const {
    std::vector<TensorSpec> out = list_tensors(client_group(id));
    return out;
}

void CheckpointReader::read_tensor(const h5::Group& g, const TensorSpec& expected,
                                   float* out) const {
    check(g.has(expected.name), g.where(expected.name), ": dataset missing (expected shape ",
          shape_text(expected.shape), ")");
    const h5::Shape s = g.shape(expected.name);
    const std::vector<int64_t> found(s.begin(), s.end());
    check(found == expected.shape, g.where(expected.name), ": shape ", shape_text(found),
          ", expected ", shape_text(expected.shape));
    const std::string dtype = g.dtype(expected.name);
    check(dtype == "float32", g.where(expected.name), ": dtype ", dtype, ", expected float32");
    if (expected.size() > 0) g.read_into(expected.name, out);
}

void CheckpointReader::read_server(const TensorSpec& expected, float* out) const {
    read_tensor(file_.open_group(ckpt::server), expected, out);
}

void CheckpointReader::read_client(int64_t id, const TensorSpec& expected, float* out) const {
    read_tensor(client_group(id), expected, out);
}

int64_t CheckpointReader::adam_step(int64_t id) const {
    return client_group(id).open_group(ckpt::optim).attr_int(ckpt::attr::step);
}

int64_t CheckpointReader::rng_counter(int64_t id) const {
    return client_group(id).attr_int(ckpt::attr::rng_counter);
}

} // namespace pfcr
