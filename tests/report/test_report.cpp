// The report module: pfcr's JSON layout (one line, 17 significant digits, timings with 6,
// null for non-finite, escaped strings), values that parse back bit for bit, row-weighted
// merges and domain means computed by hand, and the results.json field order.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "report/report.hpp"

using namespace pfcr;

namespace {

EvalResult eval(std::vector<int64_t> ks, std::vector<double> recall, std::vector<double> ndcg,
                int64_t rows) {
    EvalResult e;
    e.ks = std::move(ks);
    e.recall = std::move(recall);
    e.ndcg = std::move(ndcg);
    e.rows = rows;
    return e;
}

} // namespace

TEST(Report, JsonLayout) {
    Json j = Json::object();
    j["a"] = 1;
    j["b"] = std::vector<int64_t>{1, 2};
    j["c"] = 0.1;
    j["s"] = "q\"\\\n";
    j["t"] = true;
    j["inf"] = std::numeric_limits<double>::infinity();
    j["time"] = {{"train", 0.123456789}, {"eval", 2.0}};
    EXPECT_EQ(to_json_text(j), "{\"a\": 1, \"b\": [1, 2], \"c\": 0.10000000000000001, \"s\": "
                               "\"q\\\"\\\\\\u000a\", \"t\": true, \"inf\": null, \"time\": "
                               "{\"train\": 0.123457, \"eval\": 2}}");
}

TEST(Report, DoublesParseBackExactly) {
    for (double v : {1.0 / 3.0, 0.74796747967479671, 1e-300, 123456.789, 0.0}) {
        Json j = Json::object();
        j["v"] = v;
        const double back = Json::parse(to_json_text(j))["v"].get<double>();
        EXPECT_EQ(back, v) << to_json_text(j);
    }
}

TEST(Report, MergeRowsAndMeanByHand) {
    const EvalResult a = eval({10}, {0.5}, {0.25}, 1), b = eval({10}, {0.2}, {0.1}, 3);
    const EvalResult m = merge_rows({&a, &b});
    EXPECT_EQ(m.rows, 4);
    EXPECT_DOUBLE_EQ(m.recall[0], (0.5 * 1 + 0.2 * 3) / 4);
    EXPECT_DOUBLE_EQ(m.ndcg[0], (0.25 * 1 + 0.1 * 3) / 4);
    const EvalResult mean = mean_over({&a, &b}, {10});
    EXPECT_DOUBLE_EQ(mean.recall[0], 0.35);
    EXPECT_DOUBLE_EQ(mean.ndcg[0], 0.175);
}

TEST(Report, ResultsJsonFieldsInOrder) {
    FinetuneReport r;
    r.mode = "full";
    r.from = "ck.h5";
    r.prepared = "p.h5";
    r.fingerprint = "abc";
    r.ties = "expected";
    FinetuneDomain d;
    d.name = "A";
    d.test = eval({10}, {0.5}, {0.25}, 4);
    d.popularity = eval({10}, {0.25}, {0.125}, 4);
    d.best_epoch = {3};
    d.epochs_run = {5};
    r.domains.push_back(d);
    r.mean = mean_over({&r.domains[0].test}, {10});
    EXPECT_EQ(to_json_text(results_json(r)),
              "{\"mode\": \"full\", \"from\": \"ck.h5\", \"prepared\": \"p.h5\", \"fingerprint\": "
              "\"abc\", \"ties\": \"expected\", \"domains\": {\"A\": {\"test\": {\"recall@10\": "
              "0.5, \"ndcg@10\": 0.25}, "
              "\"popularity_test\": {\"recall@10\": 0.25, \"ndcg@10\": 0.125}, \"best_epoch\": "
              "[3], \"epochs_run\": [5], \"test_rows\": 4}}, \"mean_test\": {\"recall@10\": 0.5, "
              "\"ndcg@10\": 0.25}}");
    EXPECT_EQ(results_table(r), "domain              R@10      N@10  epochs\n"
                                "A                 0.5000    0.2500       5\n"
                                "  popularity      0.2500    0.1250\n");
}
