// Implementation of the text helpers (see text.hpp).
#include "core/text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pfcr {

std::optional<int64_t> parse_int(std::string_view s) {
    if (s.empty()) return std::nullopt;
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<double> parse_double(std::string_view s) {
    if (s.empty()) return std::nullopt;
    double v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        const size_t pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

std::string_view trim(std::string_view s) {
    const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

std::string visible(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (s.compare(i, 3, "\xEF\xBB\xBF") == 0) {
            out += "<BOM>";
            i += 2;
        } else if (s.compare(i, 2, "\xC2\xA0") == 0) {
            out += "<NBSP>";
            i += 1;
        } else if (c == '\t') {
            out += "<TAB>";
        } else if (c == '\r') {
            out += "<CR>";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", unsigned(c));
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

std::string thousands(int64_t v) {
    std::string s = std::to_string(v);
    const int first = v < 0 ? 1 : 0;
    for (int i = int(s.size()) - 3; i > first; i -= 3) s.insert(size_t(i), ",");
    return s;
}

std::string duration_text(double seconds) {
    if (!(seconds >= 0) || seconds > 1e9) return "?";
    const int64_t t = int64_t(std::llround(seconds));
    char buf[32];
    if (t < 60)
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
    else if (t < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60),
                      static_cast<long long>(t % 60));
    else
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600),
                      static_cast<long long>(t / 60 % 60));
    return buf;
}

std::string quote_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    size_t best_d = SIZE_MAX;
    for (const auto& c : candidates) {
        const size_t d = edit_distance(word, c);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    // A plausible typo: at most a third of the word changed (and at least one edit allowed).
    if (best && best_d <= std::max<size_t>(2, word.size() / 3)) return best;
    return std::nullopt;
}

} // namespace pfcr
