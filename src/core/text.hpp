// Small text helpers shared by the file readers and the config: strict integer parsing,
// splitting, trimming, edit distance for "did you mean" suggestions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pfcr {

// Whole-string decimal integer (optional leading '-'); nullopt on anything else or overflow.
std::optional<int64_t> parse_int(std::string_view s);
// Whole-string floating-point number; nullopt on anything else.
std::optional<double> parse_double(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);
std::string_view trim(std::string_view s);
// s in double quotes with '"' and '\\' backslash-escaped: a valid YAML and JSON string.
std::string quote_string(std::string_view s);
// `s` with its invisible characters made visible, for error messages about file content: a
// UTF-8 byte-order mark as <BOM>, tab as <TAB>, carriage return as <CR>, a no-break space as
// <NBSP>, any other control byte as <0xNN>; everything else unchanged.
std::string visible(std::string_view s);
// Decimal with thousands separators, for summaries: 1234567 -> "1,234,567".
std::string thousands(int64_t v);
// A duration for progress lines: 42 -> "42s", 842 -> "14m02s", 3790 -> "1h03m"; negative or
// non-finite -> "?".
std::string duration_text(double seconds);
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `word` by edit distance, if close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

} // namespace pfcr
