// UniSRec atomic-file reader (see atomic_files.hpp). Files are read whole and parsed line by
// line with from_chars; every error names "<file>:<line>".
#include "data/atomic_files.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"
#include "core/text.hpp"

namespace pfcr {
namespace {

constexpr const char* inter_header = "user_id:token\titem_id_list:token_seq\titem_id:token";
constexpr const char* text_header = "item_id:token\ttext:token_seq";

std::string read_whole_file(const std::string& path) {
    check(std::filesystem::exists(path), path, ": file not found");
    check(std::filesystem::is_regular_file(path), path, ": is not a regular file");
    std::ifstream f(path, std::ios::binary);
    check(bool(f), path, ": cannot open");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Calls fn(line_number, line) for every line (1-based), without the line terminator.
template <typename Fn> void for_each_line(const std::string& text, Fn&& fn) {
    size_t start = 0;
    int64_t line_no = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string_view line(text.data() + start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        fn(++line_no, line);
        start = end + 1;
    }
}

// "<raw id>\t<index>" rows with indices exactly 0..n-1 (any order), raw ids unique.
std::vector<std::string> read_index_file(const std::string& path, const char* what) {
    const std::string text = read_whole_file(path);
    std::vector<std::string> by_index;
    std::vector<int64_t> line_of;
    std::unordered_map<std::string, int64_t> seen;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
        if (line.empty()) return;
        const auto cols = split(line, '\t');
        check(cols.size() == 2, path, ":", ln, ": expected 2 tab-separated columns (<raw ", what,
              " id>, <index>), found ", cols.size());
        const auto idx = parse_int(cols[1]);
        check(idx && *idx >= 0, path, ":", ln, ": index '", cols[1],
              "' is not a non-negative integer");
        check(*idx < 100000000, path, ":", ln, ": index ", *idx, " is implausibly large");
        const std::string raw(cols[0]);
        check(!raw.empty(), path, ":", ln, ": empty raw ", what, " id");
        const auto [it, fresh] = seen.emplace(raw, ln);
        check(fresh, path, ":", ln, ": raw ", what, " id '", raw, "' repeats line ", it->second);
        if (size_t(*idx) >= by_index.size()) {
            by_index.resize(size_t(*idx) + 1);
            line_of.resize(size_t(*idx) + 1, 0);
        }
        check(line_of[size_t(*idx)] == 0, path, ":", ln, ": index ", *idx, " repeats line ",
              line_of[size_t(*idx)]);
        by_index[size_t(*idx)] = raw;
        line_of[size_t(*idx)] = ln;
    });
    check(!by_index.empty(), path, ": no ", what, "s (empty domain)");
    for (size_t i = 0; i < by_index.size(); ++i)
        check(line_of[i] != 0, path, ": indices must be contiguous from 0, but index ", i,
              " is missing (largest is ", by_index.size() - 1, ")");
    return by_index;
}

void read_inter(const std::string& path, int64_t n_users, int64_t n_items, int max_history,
                Split& out) {
    const std::string text = read_whole_file(path);
    bool header_seen = false;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
        if (!header_seen) {
            check(line == inter_header, path, ":1: malformed header: expected '",
                  "user_id:token<TAB>item_id_list:token_seq<TAB>item_id:token', found '",
                  visible(line), "'");
            header_seen = true;
            return;
        }
        if (line.empty()) return;
        const auto cols = split(line, '\t');
        check(cols.size() == 3, path, ":", ln,
              ": expected 3 tab-separated columns (user_id, item_id_list, item_id), found ",
              cols.size());
        const auto user = parse_int(cols[0]);
        check(user.has_value(), path, ":", ln, ": user id '", cols[0], "' is not an integer");
        check(*user >= 0 && *user < n_users, path, ":", ln, ": user ", *user,
              " not in user2index (", n_users, " users)");
        const auto item_id = [&](std::string_view tok) -> int32_t {
            const auto v = parse_int(tok);
            check(v.has_value(), path, ":", ln, ": item id '", tok, "' is not an integer");
            check(*v >= 0 && *v < n_items, path, ":", ln, ": item ", *v, " not in item2index (",
                  n_items, " items)");
            return int32_t(*v + 1); // internal id: 0 is padding
        };
        int64_t len = 0;
        for (const auto tok : split(cols[1], ' ')) {
            if (tok.empty()) continue; // tolerate double spaces
            out.items.push_back(item_id(tok));
            ++len;
        }
        check(len > 0, path, ":", ln, ": empty history");
        check(len <= max_history, path, ":", ln, ": history of ", len,
              " items is longer than MAX_ITEM_LIST_LENGTH = ", max_history);
        out.indptr.push_back(int64_t(out.items.size()));
        out.targets.push_back(item_id(cols[2]));
        out.users.push_back(int32_t(*user));
    });
    check(header_seen, path, ": empty file (no header)");
    check(out.rows() > 0, path, ": no rows (empty domain)");
}

} // namespace

std::string domain_file(const std::string& dir, const std::string& name,
                        const std::string& suffix) {
    return (std::filesystem::path(dir) / (name + "." + suffix)).string();
}

DomainData read_domain(const std::string& dir, const std::string& name, int max_history) {
    DomainData d;
    d.name = name;
    d.dir = dir;
    check(std::filesystem::is_directory(dir), dir, ": domain folder not found (domain '", name,
          "')");
    const auto item_file = domain_file(dir, name, "item2index");
    const auto user_file = domain_file(dir, name, "user2index");
    d.item_raw_ids = read_index_file(item_file, "item");
    d.n_items = int64_t(d.item_raw_ids.size());
    d.n_users = int64_t(read_index_file(user_file, "user").size());
    d.input_files = {item_file, user_file};
    const std::pair<const char*, Split*> splits[] = {
        {"train.inter", &d.train}, {"valid.inter", &d.valid}, {"test.inter", &d.test}};
    for (const auto& [suffix, split_ptr] : splits) {
        const auto path = domain_file(dir, name, suffix);
        read_inter(path, d.n_users, d.n_items, max_history, *split_ptr);
        d.input_files.push_back(path);
    }
    return d;
}

std::vector<std::string> read_item_texts(const DomainData& domain) {
    const auto path = domain_file(domain.dir, domain.name, "text");
    const std::string text = read_whole_file(path);
    std::unordered_map<std::string_view, int64_t> index;
    for (size_t i = 0; i < domain.item_raw_ids.size(); ++i)
        index.emplace(domain.item_raw_ids[i], i);
    std::vector<std::string> out(domain.item_raw_ids.size());
    std::vector<int64_t> line_of(out.size(), 0);
    bool header_seen = false;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
        if (!header_seen) {
            check(line == text_header, path, ":1: malformed header: expected '",
                  "item_id:token<TAB>text:token_seq', found '", visible(line), "'");
            header_seen = true;
            return;
        }
        if (line.empty()) return;
        const auto tab = line.find('\t');
        check(tab != std::string_view::npos, path, ":", ln,
              ": expected 2 tab-separated columns (item id, text)");
        const auto raw = line.substr(0, tab);
        const auto it = index.find(raw);
        check(it != index.end(), path, ":", ln, ": item '", raw, "' not in item2index");
        check(line_of[size_t(it->second)] == 0, path, ":", ln, ": item '", raw,
              "' already has a text at line ", line_of[size_t(it->second)]);
        check(!trim(line.substr(tab + 1)).empty(), path, ":", ln, ": item '", raw,
              "' has an empty text");
        out[size_t(it->second)] = std::string(line.substr(tab + 1));
        line_of[size_t(it->second)] = ln;
    });
    check(header_seen, path, ": empty file (no header)");
    for (size_t i = 0; i < out.size(); ++i)
        check(line_of[i] != 0, path, ": item '", domain.item_raw_ids[i], "' (index ", i,
              ") has no text row");
    return out;
}

std::vector<float> read_item_features(const std::string& path, int64_t n_items, int64_t dim) {
    check(std::filesystem::exists(path), path, ": feature file not found");
    check(std::filesystem::is_regular_file(path), path, ": feature path is not a regular file");
    const auto size = std::filesystem::file_size(path);
    const uint64_t expected = uint64_t(n_items) * uint64_t(dim) * 4;
    if (size != expected) {
        std::ostringstream hint;
        if (size % (uint64_t(n_items) * 4) == 0)
            hint << "; it would fit plm_size = " << size / (uint64_t(n_items) * 4);
        fail(path, ": size is ", size, " bytes, expected n_items x plm_size x 4 = ", n_items, " x ",
             dim, " x 4 = ", expected, " bytes", hint.str());
    }
    std::vector<float> feats(size_t(n_items * dim));
    std::ifstream f(path, std::ios::binary);
    check(bool(f), path, ": cannot open");
    f.read(reinterpret_cast<char*>(feats.data()), std::streamsize(expected));
    check(uint64_t(f.gcount()) == expected, path, ": short read");
    static_assert(std::endian::native == std::endian::little, "feature files are little-endian");
    for (size_t i = 0; i < feats.size(); ++i)
        check(std::isfinite(feats[i]), path, ": non-finite value ", feats[i], " at item ",
              int64_t(i) / dim, ", dimension ", int64_t(i) % dim);
    return feats;
}

} // namespace pfcr
