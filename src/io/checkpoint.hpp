// Checkpoints `round_%06d.h5` (docs/ARCHITECTURE.md §5, docs/formats.md): one HDF5 file holding the
// server tensors and every client's tensors and counters, written collectively by all ranks
// with parallel HDF5 and read back with any number of ranks. This file knows the layout and
// the write protocol (temp file, rename, keep the newest N); it does not know which tensors a
// stage stores (callers pass names and shapes) nor the model's shapes (sim validates those).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/comm.hpp"
#include "io/h5.hpp"

namespace pfcr {

inline constexpr const char* checkpoint_format = "pfcr-checkpoint";
inline constexpr const char* checkpoint_format_version = "1.0";

// A float32 dataset: `name` is relative to /server or /clients/<id> and may contain '/', e.g.
// "model/trm_encoder.layer.0.feed_forward.dense_1.weight", "optim/LayerNorm.weight/m".
// Shapes are PyTorch's (linear weights [out, in]), data row-major.
struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    int64_t size() const; // product of shape
    bool operator==(const TensorSpec&) const = default;
};

// Root attributes.
struct CheckpointHeader {
    std::string stage;                // "pretrain" | "finetune"
    int64_t round = 0;                // rounds completed; names the file
    uint64_t seed = 0;                // stored as int64 (seeds are < 2^32 by the config schema)
    int64_t n_clients = 0;            // == clients.size()
    int world_size_at_write = 1;      // set by write_checkpoint from the communicator
    std::string software_version;     // pfcr::software_version (git describe)
    std::string created_utc;          // ISO 8601; written as rank 0's (its value, or now if empty)
    std::string config_yaml;          // the full resolved config
    std::string algorithm;            // federation.algorithm
    std::string prepared_fingerprint; // the prepared.h5 trained on ("" in older checkpoints)
    std::string trace_sha256;         // system.trace's content, if one was used (else "")
};

// Attributes of /clients/<id>.
struct ClientMeta {
    int64_t id = 0; // group name, decimal without padding
    std::string domain;
    int64_t shard = 0;
    int64_t n_train_rows = 0;
    // Client tensors whose first dimension differs from the shared spec for this client (e.g.
    // prompt-full's item_embedding, one row per item of the client's domain): (name, rows).
    std::vector<std::pair<std::string, int64_t>> rows_override;
    // Free-form state a stage keeps with the client, as text (fine-tuning: its early-stopping
    // state and results as JSON, src/sim/finetune.cpp); attribute `stage_state` if not empty.
    std::string stage_state;
};

// Everything one rank passes to write_checkpoint. Shared parts (header, server, clients,
// client_tensors) must be identical on every rank; write_checkpoint checks that they are.
struct CheckpointContent {
    CheckpointHeader header;
    std::vector<TensorSpec> server;         // /server/<name>
    std::vector<const float*> server_data;  // parallel to `server`; rank 0's copy is written
    std::vector<ClientMeta> clients;        // every client, any order, ids unique
    std::vector<TensorSpec> client_tensors; // the same set under every /clients/<id>/
    // Bytes the caller frees on this file system while the file is written (fine-tuning deletes
    // each client's progress file once it is streamed): the room check counts them as free.
    int64_t reclaimable_bytes = 0;
    // A client this rank owns. Every client is owned by exactly one rank.
    struct Owned {
        int64_t id = 0;
        int64_t adam_step = 0;          // -> /clients/<id>/optim attr "step"
        int64_t rng_counter = 0;        // -> /clients/<id> attr "rng_counter"
        std::vector<const float*> data; // parallel to client_tensors
        // Instead of `data` (left empty): called once, just before this client's tensors are
        // written, and returns their pointers (valid until the next fetch of this rank), so
        // that a rank can stream clients from elsewhere without holding them all in memory.
        std::function<std::vector<const float*>()> fetch;
    };
    std::vector<Owned> owned;
};

// "round_000004.h5"
std::string checkpoint_file_name(int64_t round);

// Fault injection for crash-safety tests (the tests' run context sets it; production passes
// none): `mid_write(round)` runs on every rank once the temp file exists and about half the
// clients' data is written, e.g. to raise SIGKILL there.
struct CheckpointFaults {
    std::function<void(int64_t round)> mid_write;
};

// The bytes write_checkpoint's room check asks for: an upper estimate of the file's size from
// the shared content (tensor bytes, attribute text, 1 KiB per HDF5 object, 256 KiB).
int64_t checkpoint_size_estimate(const CheckpointContent& c);

// Collective over `comm`: every rank calls it with the same `dir`, `keep` and shared content.
// Writes <dir>/round_%06d.h5 (header.round) via <name>.tmp with the MPI-IO driver (serial
// HDF5 when comm.parallel_io_handle() is empty, e.g. SerialComm): all ranks
// create every group, dataset and attribute collectively (client by client), the owner of a
// client writes its tensors (independent transfers), rank 0 the server tensors; close (which
// syncs); rank 0 renames the temp file onto the final name (atomic) and fsyncs `dir`; then
// rank 0 deletes older checkpoints so that only the newest `keep` (>= 1, by round; the file
// just written always stays) remain, and every stale round_*.h5.tmp / .reserve (rank 0 checks
// the room first and reserves the metadata's part until the close; an I/O failure is an
// IoError, agreed: exit 74). Per-client counters are
// known only to their owner and are summed over ranks (Comm::allreduce_sum) before the collective
// attribute writes. Returns the final path on every rank.
// Errors (bad content, ranks that disagree on the shared content, a client owned by no rank
// or by two, I/O failures) throw pfcr::Error naming the file or object on EVERY rank, with
// the same message; the temp file is removed and an older checkpoint is never touched.
// `faults` (tests only; empty in production) is called in the middle of the write.
std::string write_checkpoint(Comm& comm, const std::string& dir, const CheckpointContent& c,
                             int keep, const CheckpointFaults& faults = {});

// The newest complete checkpoint in `dir`: the largest round among names round_<digits>.h5
// (at least 6 digits; *.tmp ignored), as "<dir>/round_000012.h5"; "" if none or no such dir.
std::string latest_checkpoint(const std::string& dir);

// Read side. Serial HDF5, read-only: any number of ranks may open the same file at once,
// whatever rank count wrote it. Throws pfcr::Error naming the file and object.
class CheckpointReader {
public:
    // Checks that the file exists, is HDF5, and has root attrs format == checkpoint_format and
    // format_version == checkpoint_format_version ("<path>: format 'x', expected
    // 'pfcr-checkpoint'"); reads the header and every client's attributes.
    explicit CheckpointReader(const std::string& path);

    const std::string& path() const { return path_; }
    const CheckpointHeader& header() const { return header_; }
    const std::vector<ClientMeta>& clients() const { return clients_; } // ascending id
    bool has_client(int64_t id) const;

    // Datasets present, in name order, with their shapes.
    std::vector<TensorSpec> server_tensors() const;
    std::vector<TensorSpec> client_tensors(int64_t id) const;

    // Reads one tensor into `out` (expected.size() floats). The dataset must exist and have
    // exactly expected.shape; otherwise the error names the dataset, expected and found shape.
    void read_server(const TensorSpec& expected, float* out) const;
    void read_client(int64_t id, const TensorSpec& expected, float* out) const;

    int64_t adam_step(int64_t id) const;   // /clients/<id>/optim attr step
    int64_t rng_counter(int64_t id) const; // /clients/<id> attr rng_counter

private:
    h5::Group client_group(int64_t id) const;
    void read_tensor(const h5::Group& g, const TensorSpec& expected, float* out) const;

    std::string path_;
    h5::File file_;
    CheckpointHeader header_;
    std::vector<ClientMeta> clients_;
};

} // namespace pfcr
