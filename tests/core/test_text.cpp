// Strict number parsing, splitting and "did you mean" suggestions.
#include <gtest/gtest.h>

#include "core/text.hpp"

using namespace pfcr;

TEST(Text, ParseIntIsStrict) {
    EXPECT_EQ(parse_int("42"), 42);
    EXPECT_EQ(parse_int("-7"), -7);
    EXPECT_FALSE(parse_int(""));
    EXPECT_FALSE(parse_int("4x"));
    EXPECT_FALSE(parse_int(" 4"));
    EXPECT_FALSE(parse_int("1.5"));
    EXPECT_FALSE(parse_int("99999999999999999999"));
}

TEST(Text, ParseDouble) {
    EXPECT_EQ(parse_double("1e-12"), 1e-12);
    EXPECT_EQ(parse_double("0.5"), 0.5);
    EXPECT_FALSE(parse_double("abc"));
}

TEST(Text, SplitKeepsEmptyFields) {
    const auto parts = split("a\t\tb", '\t');
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[1], "");
    EXPECT_EQ(parts[2], "b");
}

TEST(Text, ClosestMatchSuggestsTyposOnly) {
    const std::vector<std::string> keys{"n_layers", "n_heads", "hidden_size"};
    EXPECT_EQ(closest_match("n_layer", keys), "n_layers");
    EXPECT_EQ(closest_match("hiden_size", keys), "hidden_size");
    EXPECT_FALSE(closest_match("completely_different", keys));
}

TEST(Text, VisibleShowsInvisibleCharacters) {
    EXPECT_EQ(visible("a\tb"), "a<TAB>b");
    EXPECT_EQ(visible("\xEF\xBB\xBFid"), "<BOM>id");
    EXPECT_EQ(visible("x\r"), "x<CR>");
    EXPECT_EQ(visible("a\xC2\xA0"
                      "b"),
              "a<NBSP>b");
    EXPECT_EQ(visible(std::string("\x01z", 2)), "<0x01>z");
    EXPECT_EQ(visible("Ωffice text"), "Ωffice text"); // other UTF-8 untouched
}
