// The federated round (federation/engine.hpp) against independent computations with the plain
// Trainer, on a small synthetic pair of domains, through SerialComm: `local` is exactly
// independent training; one round of `pfcr` is exactly E - lr * sum_k w_k g_k up to the
// fixed-point resolution; FedAvg of one client is local training of that client; FedProx with
// mu = 0 is FedAvg bit for bit; SCAFFOLD's server control variate after a full round is the
// mean of the clients'; the pooled centralized client trains on every domain's batches; a
// client persists only its private parameters and moments.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "../support/tiny_fixtures.hpp"
#include "data/prepare.hpp"
#include "data/synth.hpp"
#include "federation/engine.hpp"
#include "io/comm.hpp"
#include "options/options.hpp"

using namespace pfcr;

namespace {

const PreparedData& tiny_data() {
    static const PreparedData data = [] {
        const auto dir = std::filesystem::temp_directory_path() /
                         ("pfcr_test_engine." + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        SynthOptions so;
        so.output = (dir / "data").string();
        so.n_domains = 2;
        so.users_min = so.users_max = 120;
        so.items_min = 50;
        so.items_max = 80;
        so.feature_dim = 32;
        auto d = prepare_dataset(
            resolve_options(test::tiny_synthetic(so, (dir / "run").string()).config).prepare,
            Logger(0, true));
        std::filesystem::remove_all(dir);
        return d;
    }();
    return data;
}

TrainOptions tiny_options() {
    TrainOptions o;
    o.hp.shape.hidden = 32;
    o.hp.shape.heads = 2;
    o.hp.shape.inner = 32;
    o.hp.shape.layers = 2;
    o.hp.shape.max_positions = 50;
    o.hp.shape.code_dim = 4;
    o.hp.shape.code_cap = 16;
    o.train_batch_size = 64;
    o.chunk_rows = 16;
    o.learning_rate = 0.003;
    return o;
}

constexpr double init_range = 0.02;

struct Setup {
    SerialComm comm;
    std::unique_ptr<Federation> fed;
};

// A federation of the two domains (client k = domain k), or of domain 0 alone.
std::unique_ptr<Federation> make(SerialComm& comm, Algorithm a, bool whole = false,
                                 double mu = 0.01, int n_clients = 2) {
    FederationOptions f;
    f.algorithm = a;
    f.share_whole_model = whole;
    f.mu = mu;
    f.server_lr = tiny_options().learning_rate;
    const auto& data = tiny_data();
    std::vector<ClientSpec> specs;
    if (a == Algorithm::centralized) {
        specs.push_back({0, "*", 0, 0, 0});
        for (const auto& d : data.domains) specs[0].train_rows += int64_t(d.train.rows());
    } else {
        for (int k = 0; k < n_clients; ++k)
            specs.push_back({k, data.domains[size_t(k)].name, 0,
                             int64_t(data.domains[size_t(k)].train.rows())});
    }
    auto fed = std::make_unique<Federation>(f, tiny_options(), init_range, specs,
                                            std::vector<int>(specs.size(), 0), comm);
    if (a == Algorithm::centralized) {
        fed->add_client(0, {&data.domains[0], &data.domains[1]});
    } else {
        for (int k = 0; k < n_clients; ++k) fed->add_client(k, {&data.domains[size_t(k)]});
    }
    return fed;
}

std::vector<float> full_params(Federation& fed, size_t client) {
    std::vector<float> p(static_cast<size_t>(fed.layout().total()));
    fed.materialize(fed.clients()[client], p.data());
    return p;
}

// A client trained alone with the plain Trainer for `rounds` epochs (epoch key = round).
ModelState train_alone(int64_t client, int rounds) {
    const TrainOptions base = tiny_options();
    ModelState st(base.hp.shape);
    init_params(st.layout, st.params.data(), base.seed, init_range);
    TrainOptions o = base;
    o.client = uint32_t(client);
    Trainer t(o, tiny_data().domains[size_t(client)]);
    for (int r = 0; r < rounds; ++r) t.train_epoch(st, uint32_t(r));
    return st;
}

} // namespace

TEST(Engine, LocalIsIndependentTrainingBitForBit) {
    SerialComm comm;
    auto fed = make(comm, Algorithm::local);
    EXPECT_EQ(fed->shared_end() - fed->shared_begin(), 0);
    for (int r = 0; r < 2; ++r) fed->run_round(r);
    for (int k = 0; k < 2; ++k) {
        const ModelState alone = train_alone(k, 2);
        const auto p = full_params(*fed, size_t(k));
        for (int64_t i = 0; i < alone.params.size(); ++i)
            ASSERT_EQ(p[size_t(i)], alone.params[i]) << "client " << k << " element " << i;
        EXPECT_EQ(fed->clients()[size_t(k)].step, alone.step);
    }
}

TEST(Engine, PfcrRoundIsServerSgdOnWeightedGradientSum) {
    SerialComm comm;
    auto fed = make(comm, Algorithm::pfcr);
    const auto& table = fed->layout().at("pq_code_embedding.weight");
    ASSERT_EQ(fed->shared_end() - fed->shared_begin(), table.size);
    const std::vector<float> before = fed->server_params();
    fed->run_round(0);
    // Independently: each client's summed table gradient over its epoch.
    const auto& data = tiny_data();
    const double total = double(data.domains[0].train.rows() + data.domains[1].train.rows());
    std::vector<double> expected(before.begin(), before.end());
    for (int k = 0; k < 2; ++k) {
        const TrainOptions base = tiny_options();
        ModelState st(base.hp.shape);
        init_params(st.layout, st.params.data(), base.seed, init_range);
        TrainOptions o = base;
        o.client = uint32_t(k);
        Trainer t(o, data.domains[size_t(k)]);
        std::vector<float> g(static_cast<size_t>(table.size), 0.0f);
        t.set_shared_grad_accumulator(g.data());
        t.train_epoch(st, 0);
        const double w = double(data.domains[size_t(k)].train.rows()) / total;
        for (int64_t i = 0; i < table.size; ++i)
            expected[size_t(i)] -= base.learning_rate * w * double(g[size_t(i)]);
    }
    // Tolerance: fixed-point resolution 2^-40 per contribution and float rounding of the
    // aggregate and of E (|E| <= ~0.1): a few float ulps of 0.1, 1e-7.
    double max_diff = 0;
    for (int64_t i = 0; i < table.size; ++i)
        max_diff = std::max(
            max_diff, std::abs(double(fed->server_params()[size_t(i)]) - expected[size_t(i)]));
    EXPECT_LT(max_diff, 1e-7);
    const size_t probe = size_t(5 * 32 + 3); // row 5 (row 0 is padding: never any gradient)
    EXPECT_GT(std::abs(double(fed->server_params()[probe]) - double(before[probe])), 0.0);
}

// federation.server_lr: 0 (the default) means learning_rate, as docs/METHOD.md §6; another value is
// pfcr's own server step; any other algorithm must leave it 0 (it would be silently unused).
TEST(Engine, ServerLrDefaultsToLearningRateAndIsPfcrOnly) {
    const auto opts = [](std::vector<std::string> sets) {
        sets.push_back("learning_rate=0.002");
        return resolve_options(Config::load({}, sets)).federation;
    };
    EXPECT_EQ(opts({}).server_lr, 0.002);
    EXPECT_EQ(opts({"federation.server_lr=0.5"}).server_lr, 0.5);
    try {
        opts({"federation.algorithm=fedavg", "federation.server_lr=0.5"});
        FAIL() << "fedavg accepted federation.server_lr";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("federation.server_lr = 0.5 (--set "
                                             "federation.server_lr=0.5): only algorithm pfcr"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Engine, FedAvgOfOneClientIsLocalTraining) {
    for (bool whole : {false, true}) {
        SerialComm comm;
        auto fed = make(comm, Algorithm::fedavg, whole, 0.01, /*n_clients=*/1);
        // One round: later rounds would amplify ulp differences through Adam (key.bias has an
        // exactly zero true gradient, so its update is the sign of rounding noise).
        fed->run_round(0);
        const ModelState alone = train_alone(0, 1);
        const auto p = full_params(*fed, 0);
        // x + float(x_k - x) via 2^-40 fixed point: within 1 float ulp of x_k (1.2e-7 rel).
        double max_diff = 0;
        for (int64_t i = 0; i < alone.params.size(); ++i)
            max_diff = std::max(max_diff, std::abs(double(p[size_t(i)]) - double(alone.params[i])) /
                                              std::max(1.0, std::abs(double(alone.params[i]))));
        EXPECT_LT(max_diff, 1e-6) << (whole ? "whole" : "table");
    }
}

TEST(Engine, FedProxWithZeroMuIsFedAvgBitForBit) {
    SerialComm c1, c2;
    auto avg = make(c1, Algorithm::fedavg);
    auto prox = make(c2, Algorithm::fedprox, false, /*mu=*/0.0);
    auto prox_on = make(c2, Algorithm::fedprox, false, /*mu=*/1.0);
    for (int r = 0; r < 2; ++r) {
        avg->run_round(r);
        prox->run_round(r);
        prox_on->run_round(r);
    }
    EXPECT_EQ(avg->server_params(), prox->server_params());
    EXPECT_EQ(full_params(*avg, 1), full_params(*prox, 1));
    EXPECT_NE(avg->server_params(), prox_on->server_params()); // the term does something
}

TEST(Engine, ScaffoldServerControlIsMeanOfClientControls) {
    SerialComm comm;
    auto fed = make(comm, Algorithm::scaffold);
    fed->run_round(0); // c = 0, c_k = 0 before: after the round c = (1/K) sum_k c_k+
    const auto& c = fed->server_control();
    const auto& c0 = fed->clients()[0].control;
    const auto& c1 = fed->clients()[1].control;
    double max_diff = 0, norm = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        const double mean = 0.5 * (double(c0[int64_t(i)]) + double(c1[int64_t(i)]));
        max_diff = std::max(max_diff, std::abs(double(c[i]) - mean));
        norm = std::max(norm, std::abs(mean));
    }
    EXPECT_GT(norm, 0.0);
    EXPECT_LT(max_diff, 1e-6 * std::max(1.0, norm));
    fed->run_round(1);
    EXPECT_TRUE(std::isfinite(fed->server_params()[0]));
}

TEST(Engine, CentralizedTrainsOnEveryDomainsBatches) {
    SerialComm comm;
    auto fed = make(comm, Algorithm::centralized);
    const RoundResult r = fed->run_round(0);
    const auto& data = tiny_data();
    const TrainOptions o = tiny_options();
    int64_t batches = 0;
    for (const auto& d : data.domains)
        batches += (int64_t(d.train.rows()) + o.train_batch_size - 1) / o.train_batch_size;
    EXPECT_EQ(fed->clients()[0].step, batches);
    EXPECT_TRUE(std::isfinite(r.loss[0]));
    EXPECT_GT(r.loss[0], 0.0);
}

// A client persists its private parameters, its Adam moments without all-zero rows (none
// before it trains; after a round at most the dense size, and fewer than dense because its
// domain's items use only some code-table rows) and SCAFFOLD's control variate.
TEST(Engine, ClientPersistsPrivateParametersAndMomentsOnly) {
    SerialComm comm;
    auto fed = make(comm, Algorithm::pfcr);
    const int64_t total = fed->layout().total();
    const int64_t table = fed->layout().at("pq_code_embedding.weight").size;
    const int64_t f = int64_t(sizeof(float));
    EXPECT_EQ(fed->clients()[0].bytes(), f * (total - table));
    EXPECT_EQ(fed->dense_client_bytes(), f * ((total - table) + 2 * total));
    fed->run_round(0);
    for (const auto& c : fed->clients()) {
        EXPECT_GT(c.moments.kept(), total - table); // the encoder's rows are all touched
        EXPECT_LT(c.moments.kept(), total);         // but not every code-table row
        EXPECT_LE(c.bytes(), fed->dense_client_bytes());
    }
    auto sc = make(comm, Algorithm::scaffold);
    EXPECT_EQ(sc->clients()[0].bytes(), f * ((total - table) + table));
    EXPECT_EQ(sc->dense_client_bytes(), f * ((total - table) + 2 * total + table));
}

TEST(Engine, NonFiniteLossNamesRoundAndClient) {
    SerialComm comm;
    FederationOptions f;
    f.algorithm = Algorithm::local;
    TrainOptions o = tiny_options();
    o.learning_rate = 1e30; // Adam moves every weight by ~1e30: the second round's loss overflows
    const auto& data = tiny_data();
    Federation fed(f, o, init_range,
                   {{0, data.domains[0].name, 0, int64_t(data.domains[0].train.rows())}}, {0},
                   comm);
    fed.add_client(0, {&data.domains[0]});
    try {
        for (int r = 0; r < 5; ++r) fed.run_round(r);
        FAIL() << "no error on a diverging run";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("client 0 (domain " + data.domains[0].name), std::string::npos) << m;
        EXPECT_NE(m.find("round "), std::string::npos) << m;
    }
}
