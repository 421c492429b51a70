// Results as JSON and tables (see report.hpp).
#include "report/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace pfcr {
namespace {

// JSON string: quotes, backslashes and control characters escaped.
void put_string(std::ostringstream& os, const std::string& s) {
    os << '"';
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            os << '\\' << c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
            os << buf;
        } else {
            os << c;
        }
    }
    os << '"';
}

// `timing`: inside a "time" or "time_s" object, whose wall-clock seconds print with 6
// significant digits (they differ from run to run anyway); every other double with 17.
void put(std::ostringstream& os, const Json& j, bool timing) {
    switch (j.type()) {
    case Json::value_t::object: {
        os << '{';
        bool first = true;
        for (const auto& [k, v] : j.items()) {
            os << (first ? "" : ", ");
            first = false;
            put_string(os, k);
            os << ": ";
            put(os, v, timing || k == "time" || k == "time_s");
        }
        os << '}';
        break;
    }
    case Json::value_t::array: {
        os << '[';
        for (size_t i = 0; i < j.size(); ++i) {
            os << (i ? ", " : "");
            put(os, j[i], timing);
        }
        os << ']';
        break;
    }
    case Json::value_t::string:
        put_string(os, j.get_ref<const std::string&>());
        break;
    case Json::value_t::boolean:
        os << (j.get<bool>() ? "true" : "false");
        break;
    case Json::value_t::number_integer:
        os << j.get<int64_t>();
        break;
    case Json::value_t::number_unsigned:
        os << j.get<uint64_t>();
        break;
    case Json::value_t::number_float: {
        const double v = j.get<double>();
        if (std::isfinite(v))
            os << std::setprecision(timing ? 6 : 17) << v; // 17: round-trip exact (%.17g)
        else
            os << "null"; // JSON has no infinity or NaN
        break;
    }
    default:
        os << "null";
        break;
    }
}

std::string header_row(const std::vector<int64_t>& ks, const char* last) {
    std::ostringstream t;
    t << std::left << std::setw(14) << "domain" << std::right;
    for (int64_t k : ks)
        t << std::setw(10) << ("R@" + std::to_string(k)) << std::setw(10)
          << ("N@" + std::to_string(k));
    t << std::setw(8) << last << "\n";
    return t.str();
}

void metric_cells(std::ostringstream& t, const EvalResult& e) {
    t << std::fixed << std::setprecision(4);
    for (size_t i = 0; i < e.ks.size(); ++i)
        t << std::setw(10) << e.recall[i] << std::setw(10) << e.ndcg[i];
    t.unsetf(std::ios::fixed);
}

} // namespace

std::string to_json_text(const Json& j) {
    std::ostringstream os;
    put(os, j, false);
    return os.str();
}

Json metrics_json(const EvalResult& r) {
    Json j = Json::object();
    for (size_t i = 0; i < r.ks.size(); ++i) {
        j["recall@" + std::to_string(r.ks[i])] = r.recall[i];
        j["ndcg@" + std::to_string(r.ks[i])] = r.ndcg[i];
    }
    return j;
}

EvalResult merge_rows(const std::vector<const EvalResult*>& parts) {
    EvalResult m;
    m.ks = parts.at(0)->ks;
    m.recall.assign(m.ks.size(), 0.0);
    m.ndcg.assign(m.ks.size(), 0.0);
    for (const auto* p : parts) m.rows += p->rows;
    for (const auto* p : parts)
        for (size_t i = 0; i < m.ks.size(); ++i) {
            m.recall[i] += p->recall[i] * double(p->rows) / double(std::max<int64_t>(m.rows, 1));
            m.ndcg[i] += p->ndcg[i] * double(p->rows) / double(std::max<int64_t>(m.rows, 1));
        }
    return m;
}

EvalResult mean_over(const std::vector<const EvalResult*>& domains,
                     const std::vector<int64_t>& ks) {
    EvalResult mean;
    mean.ks = ks;
    mean.recall.assign(ks.size(), 0.0);
    mean.ndcg.assign(ks.size(), 0.0);
    for (const EvalResult* e : domains)
        for (size_t i = 0; i < ks.size(); ++i) {
            mean.recall[i] += e->recall[i] / double(domains.size());
            mean.ndcg[i] += e->ndcg[i] / double(domains.size());
        }
    return mean;
}

Json results_json(const FinetuneReport& r) {
    Json j = Json::object();
    j["mode"] = r.mode;
    j["from"] = r.from;
    j["prepared"] = r.prepared;
    j["fingerprint"] = r.fingerprint;
    j["ties"] = r.ties;
    Json domains = Json::object();
    for (const auto& d : r.domains) {
        Json e = Json::object();
        e["test"] = metrics_json(d.test);
        e["popularity_test"] = metrics_json(d.popularity);
        e["best_epoch"] = d.best_epoch;
        e["epochs_run"] = d.epochs_run;
        e["test_rows"] = d.test.rows;
        domains[d.name] = std::move(e);
    }
    j["domains"] = std::move(domains);
    j["mean_test"] = metrics_json(r.mean);
    return j;
}

std::string results_table(const FinetuneReport& r) {
    std::ostringstream t;
    t << header_row(r.mean.ks, "epochs");
    for (const auto& d : r.domains) {
        t << std::left << std::setw(14) << d.name << std::right;
        metric_cells(t, d.test);
        const int64_t most =
            d.epochs_run.empty() ? 0 : *std::max_element(d.epochs_run.begin(), d.epochs_run.end());
        t << std::setw(8) << most << "\n"
          << std::left << std::setw(14) << "  popularity" << std::right;
        metric_cells(t, d.popularity);
        t << "\n";
    }
    return t.str();
}

std::string prepared_line(const PrepareReport& r) {
    std::ostringstream os;
    os << "prepared: " << r.path << " (" << r.n_domains << " domains, fingerprint "
       << r.fingerprint.substr(0, 12) << ") in " << std::fixed << std::setprecision(1) << r.seconds
       << " s";
    return os.str();
}

Json evaluate_json(const EvaluateReport& r) {
    Json j = Json::object();
    j["checkpoint"] = r.checkpoint;
    j["stage"] = r.stage;
    j["round"] = r.round;
    j["state"] = r.state;
    j["split"] = r.split;
    j["ties"] = r.ties;
    j["prepared"] = r.prepared;
    j["fingerprint"] = r.fingerprint;
    Json domains = Json::object();
    for (const auto& [name, e] : r.domains) {
        Json d = Json::object();
        d[r.split] = metrics_json(e);
        d["rows"] = e.rows;
        domains[name] = std::move(d);
    }
    j["domains"] = std::move(domains);
    j["mean_" + r.split] = metrics_json(r.mean);
    return j;
}

std::string evaluate_table(const EvaluateReport& r) {
    std::ostringstream t;
    t << header_row(r.mean.ks, "rows");
    const auto row = [&](const std::string& name, const EvalResult& e) {
        t << std::left << std::setw(14) << name << std::right;
        metric_cells(t, e);
        t << std::setw(8) << (e.rows ? std::to_string(e.rows) : std::string()) << "\n";
    };
    for (const auto& [name, e] : r.domains) row(name, e);
    row("mean", r.mean);
    return t.str();
}

} // namespace pfcr
