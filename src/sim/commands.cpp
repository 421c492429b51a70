// `pfcr synth` and `pfcr prepare` drivers (see commands.hpp): call the data module, write the
// outputs atomically, print summaries.
#include "sim/commands.hpp"

#include <filesystem>
#include <iomanip>
#include <ostream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "data/prepare.hpp"
#include "data/synth.hpp"
#include "federation/system.hpp"
#include "io/atomic_file.hpp"

namespace pfcr {

PrepareReport run_prepare(const Options& opt, const Logger& log, std::ostream& out) {
    Stopwatch total;
    const std::string& path = opt.prepared;
    PreparedData d = prepare_dataset(opt.prepare, log);
    Stopwatch sw;
    write_prepared(path, d);
    // Written only with a result, so it always describes the prepared.h5 beside it.
    write_text_file_atomic(
        (std::filesystem::path(opt.output_dir) / "config.resolved.yaml").string(),
        opt.config.to_yaml());
    log.info("wrote " + path + " in " + std::to_string(sw.seconds()) + " s");
    print_prepared_summary(d, out);
    const PrepareReport report{path, d.manifest.fingerprint, int64_t(d.domains.size()),
                               total.seconds()};
    out << prepared_line(report) << "\n";
    return report;
}

void run_synth(const Options& opt, const Logger& log, std::ostream& out) {
    const SynthOptions& o = opt.synth;
    Stopwatch sw;
    const SynthSummary s = write_synthetic_dataset(o);
    int64_t users = 0, items = 0, inter = 0, train = 0;
    for (const auto& d : s.domains) {
        users += d.n_users;
        items += d.n_items;
        inter += d.n_interactions;
        train += d.n_train_rows;
    }
    const size_t show = std::min<size_t>(s.domains.size(), 8);
    out << std::left << std::setw(12) << "domain" << std::right << std::setw(9) << "users"
        << std::setw(8) << "items" << std::setw(10) << "train" << std::setw(10) << "mean len"
        << "\n";
    for (size_t i = 0; i < show; ++i) {
        const auto& d = s.domains[i];
        out << std::left << std::setw(12) << d.name << std::right << std::setw(9)
            << thousands(d.n_users) << std::setw(8) << thousands(d.n_items) << std::setw(10)
            << thousands(d.n_train_rows) << std::setw(10) << std::fixed << std::setprecision(2)
            << d.mean_seq_len << "\n";
        out.unsetf(std::ios::fixed);
    }
    if (show < s.domains.size()) out << "... (" << s.domains.size() - show << " more)\n";
    out << "synth: " << s.domains.size() << " domains, " << thousands(users) << " users, "
        << thousands(items) << " items, " << thousands(inter) << " interactions, "
        << thousands(train) << " train rows -> " << o.output << " in " << std::fixed
        << std::setprecision(1) << sw.seconds() << " s\n";
    out.unsetf(std::ios::fixed);
    if (o.trace_clients > 0) {
        // The on/off process of system.on_mean_s / off_mean_s, as a trace file.
        SystemOptions sys = opt.federation.system;
        sys.onoff = true;
        sys.trace.reset();
        const std::string path = (std::filesystem::path(o.output) / "availability.csv").string();
        write_text_file_atomic(
            path, availability_trace_csv(sys, o.seed, o.trace_clients, o.trace_hours * 3600.0));
        out << "synth: availability trace of " << thousands(o.trace_clients) << " clients over "
            << o.trace_hours << " h -> " << path
            << " (use: --set system.availability=trace --set system.trace=" << path << ")\n";
    }
    out << "next: pfcr prepare -c <your config> -c " << s.config_fragment_path << "\n";
    log.info("synth done");
}

} // namespace pfcr
