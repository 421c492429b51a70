// HDF5 wrappers: typed round trips of datasets, strings and attributes, errors that name the
// file and object, and AtomicOutput leaving nothing behind when not committed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/h5.hpp"

using namespace pfcr;
using ::testing::HasSubstr;

namespace {
std::string temp_path(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / "pfcr_test_h5";
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}
} // namespace

TEST(H5, DatasetsStringsAndAttributesRoundTrip) {
    const auto path = temp_path("rt.h5");
    {
        h5::File f = h5::File::create(path);
        f.set_attr("format", "x");
        f.set_attr("n", int64_t(42));
        f.set_attr("eps", 1e-12);
        h5::Group g = f.create_group("grp");
        const std::vector<float> a{1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f};
        g.write("a", {2, 3}, a.data());
        g.write("i", std::vector<int32_t>{1, 2, 3});
        g.write("l", std::vector<int64_t>{-1, 1LL << 40});
        g.write_strings("s", {"alpha", "βeta", ""});
        f.close();
    }
    const h5::File f = h5::File::open_read(path);
    EXPECT_EQ(f.attr_string("format"), "x");
    EXPECT_EQ(f.attr_int("n"), 42);
    EXPECT_EQ(f.attr_double("eps"), 1e-12);
    const h5::Group g = f.open_group("grp");
    h5::Shape shape;
    EXPECT_EQ(g.read<float>("a", &shape),
              (std::vector<float>{1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f}));
    EXPECT_EQ(shape, (h5::Shape{2, 3}));
    EXPECT_EQ(g.dtype("a"), "float32");
    EXPECT_EQ(g.dtype("i"), "int32");
    EXPECT_EQ(g.dtype("l"), "int64");
    EXPECT_EQ(g.read<int64_t>("l"), (std::vector<int64_t>{-1, 1LL << 40}));
    EXPECT_EQ(g.read_strings("s"), (std::vector<std::string>{"alpha", "βeta", ""}));
    EXPECT_EQ(f.children(), (std::vector<std::string>{"grp"}));
    EXPECT_TRUE(f.has_group("grp"));
    EXPECT_FALSE(g.has_group("a"));
}

TEST(H5, ErrorsNameFileAndObject) {
    const auto path = temp_path("err.h5");
    {
        h5::File f = h5::File::create(path);
        f.close();
    }
    const h5::File f = h5::File::open_read(path);
    try {
        f.read<float>("missing");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr(path + ":/missing: dataset missing"));
    }
    const auto not_h5 = temp_path("plain.txt");
    std::ofstream(not_h5) << "hello";
    EXPECT_THROW(h5::File::open_read(not_h5), Error);
    EXPECT_THROW(h5::File::open_read(temp_path("absent.h5")), Error);
}

TEST(AtomicOutput, NothingAppearsUnlessCommitted) {
    const auto path = temp_path("atomic.txt");
    std::filesystem::remove(path);
    {
        AtomicOutput out(path);
        std::ofstream(out.temp_path()) << "partial";
        EXPECT_TRUE(std::filesystem::exists(out.temp_path()));
    } // destroyed without commit, as on an exception
    EXPECT_FALSE(std::filesystem::exists(path));
    for (const auto& e :
         std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
        EXPECT_EQ(e.path().string().find("atomic.txt.tmp"), std::string::npos) << e.path();
    write_text_file_atomic(path, "done");
    std::ifstream in(path);
    std::string s;
    in >> s;
    EXPECT_EQ(s, "done");
}
