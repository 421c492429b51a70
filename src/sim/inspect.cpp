// `pfcr inspect`: prints what a pfcr HDF5 file holds and validates its schema. Knows
// prepared.h5 now; checkpoints are added with the federation stage.
#include <filesystem>
#include <ostream>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "sim/commands.hpp"

namespace pfcr {

int run_inspect(const std::string& path, std::ostream& out) {
    check(std::filesystem::exists(path), path, ": no such file");
    check(h5::is_hdf5(path), path, ": not an HDF5 file");
    std::string format;
    {
        const h5::File f = h5::File::open_read(path);
        check(f.has_attr("format"), path, ": no 'format' attribute: not a pfcr file");
        format = f.attr_string("format");
    }
    if (format != prepared_format)
        fail(path, ": unknown format '", format, "' (this pfcr reads '", prepared_format, "')");
    const auto problems = validate_prepared(path);
    if (!problems.empty()) {
        out << path << ": INVALID " << prepared_format << " file (" << problems.size()
            << " problems)\n";
        for (const auto& p : problems) out << "  " << p << "\n";
        return 1;
    }
    const PreparedData d = read_prepared(path);
    const auto& m = d.manifest;
    out << path << ": " << prepared_format << " " << prepared_format_version << ", written by pfcr "
        << m.software_version << " at " << m.created_utc << "\n";
    out << "fingerprint " << m.fingerprint << ", " << m.input_files.size() << " input files\n";
    print_prepared_summary(d, out);
    out << "schema: valid\n";
    return 0;
}

} // namespace pfcr
