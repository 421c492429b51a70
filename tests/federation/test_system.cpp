// Device profiles, availability and the synchronous round plan (federation/system.hpp): the
// distributions and the clock arithmetic on hand-computed cases, keyed determinism (a client's
// profile and availability do not depend on who else is asked, or in which order), the
// stationary on/off share, and deadline / over-commit / unavailability selection.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "federation/system.hpp"

namespace pfcr {
namespace {

TEST(System, DistributionsByHand) {
    EXPECT_EQ(draw({DistKind::constant, 0.5, 0}, 0.3, 0.9), 0.5);
    EXPECT_DOUBLE_EQ(draw({DistKind::uniform, 2, 6}, 0.25, 0.9), 3.0);
    EXPECT_DOUBLE_EQ(draw({DistKind::pareto, 2, 2}, 0.75, 0.9), 4.0); // 2 * 0.25^(-1/2)
    // u1 = e^(-1/2): Box-Muller radius 1; u2 = 0: cos 0 = 1 -> z = 1 -> a e^b
    EXPECT_DOUBLE_EQ(draw({DistKind::lognormal, 0.01, 0.5}, std::exp(-0.5), 0.0),
                     0.01 * std::exp(0.5));
    for (DistKind k :
         {DistKind::constant, DistKind::lognormal, DistKind::pareto, DistKind::uniform})
        EXPECT_EQ(parse_dist_kind(dist_kind_name(k)), k);
    EXPECT_THROW(parse_dist_kind("normal"), Error);
}

TEST(System, ParticipationSecondsByHand) {
    ClientProfile p;
    p.s_per_sample = 0.002;
    p.down_bytes_per_s = 1e6; // 8 Mbit/s
    p.up_bytes_per_s = 5e5;   // 4 Mbit/s
    EXPECT_DOUBLE_EQ(participation_seconds(p, 1000, 1000000, 500000), 2.0 + 1.0 + 1.0);
    p.down_bytes_per_s = p.up_bytes_per_s = 0; // unlimited: compute only
    EXPECT_DOUBLE_EQ(participation_seconds(p, 1000, 1000000, 500000), 2.0);
    SystemOptions o;
    o.down_mbps = {DistKind::constant, 8, 0};
    EXPECT_DOUBLE_EQ(client_profile(o, 1, 0).down_bytes_per_s, 1e6);
    EXPECT_EQ(client_profile(o, 1, 0).up_bytes_per_s, 0.0);
    EXPECT_EQ(client_profile(o, 1, 0).s_per_sample, 1e-3); // the default device
}

TEST(System, ProfilesAreKeyedBySeedAndClient) {
    SystemOptions o;
    o.compute = {DistKind::lognormal, 0.01, 0.5};
    o.up_mbps = {DistKind::pareto, 1, 1.5};
    std::vector<double> speeds;
    for (int64_t k = 0; k < 4000; ++k) {
        const ClientProfile p = client_profile(o, 7, k);
        EXPECT_EQ(p.s_per_sample, client_profile(o, 7, k).s_per_sample);
        EXPECT_GE(p.up_bytes_per_s, 1e6 / 8); // Pareto minimum 1 Mbit/s
        speeds.push_back(p.s_per_sample);
    }
    EXPECT_NE(client_profile(o, 7, 1).s_per_sample, client_profile(o, 8, 1).s_per_sample);
    EXPECT_NE(speeds[0], speeds[1]);
    // Median of 4,000 lognormal draws: standard error 1.25 sigma / sqrt(n) = 1 % in log space;
    // 3 % is 3 standard errors.
    std::nth_element(speeds.begin(), speeds.begin() + 2000, speeds.end());
    EXPECT_NEAR(std::log(speeds[2000] / 0.01), 0.0, 0.03);
}

TEST(System, AvailabilityOnOff) {
    SystemOptions always;
    Availability a(always, 1, 3);
    EXPECT_TRUE(a.online(2, 1e9));
    EXPECT_TRUE(std::isinf(a.online_until(2, 5.0)));

    SystemOptions o;
    o.onoff = true;
    o.on_mean_s = 300;
    o.off_mean_s = 100;
    const int64_t n = 4000;
    Availability b(o, 11, n);
    int64_t on = 0;
    for (int64_t k = 0; k < n; ++k) on += b.online(k, 10000.0);
    // Stationary share 0.75; binomial standard error 0.0068, tolerance 3 of them.
    EXPECT_NEAR(double(on) / double(n), 0.75, 0.021);
    // The same client asked directly, or step by step, or after others: the same answers.
    Availability c(o, 11, n), d(o, 11, n);
    for (double t = 0; t <= 10000; t += 37) d.online(5, t);
    EXPECT_EQ(c.online(5, 10000.0), d.online(5, 10000.0));
    EXPECT_EQ(c.online_until(5, 10000.0), d.online_until(5, 10000.0));
    EXPECT_EQ(c.online(5, 10000.0), b.online(5, 10000.0));
    // until >= t, and within the on period the client is on until then
    for (int64_t k = 0; k < 50; ++k) {
        const double u = c.online_until(k, 20000.0);
        EXPECT_GE(u, 20000.0);
        if (u > 20000.0) {
            EXPECT_TRUE(c.online(k, std::nextafter(u, 0.0)));
        }
    }
    EXPECT_THROW(c.online(5, 0.0), Error); // back in time beyond the current period
}

TEST(System, SyncRoundDeadlineAndOvercommit) {
    SystemOptions always;
    Availability a(always, 1, 10);
    // target 2, deadline 8: client 4 (9 s) misses the deadline; of 2 (1 s), 3 (3 s), 5 (3 s),
    // 1 (5 s) the first two finish: 2, then 3 (ties with 5: lower id first)
    const RoundPlan p = plan_sync_round({1, 2, 3, 4, 5}, {5, 1, 3, 9, 3}, 2, 8, 100, a);
    EXPECT_EQ(p.participants, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(p.dropped_deadline, (std::vector<int64_t>{4}));
    EXPECT_EQ(p.dropped_overcommit, (std::vector<int64_t>{1, 5}));
    EXPECT_TRUE(p.dropped_unavailable.empty());
    // the round closes at 3 s, when the second participant finishes: the others stop there
    EXPECT_DOUBLE_EQ(p.wasted_client_s, 3 + 3 + 3);
    EXPECT_DOUBLE_EQ(p.start_s, 100);
    EXPECT_DOUBLE_EQ(p.end_s, 103); // the second participant's finish
    // target 5: only 4 make it, so the server waits until the deadline
    const RoundPlan q = plan_sync_round({1, 2, 3, 4, 5}, {5, 1, 3, 9, 3}, 5, 8, 100, a);
    EXPECT_EQ(q.participants, (std::vector<int64_t>{1, 2, 3, 5}));
    EXPECT_DOUBLE_EQ(q.end_s, 108);
    // no deadline: everyone participates, the round lasts as long as the slowest
    const RoundPlan r = plan_sync_round({1, 2, 3, 4, 5}, {5, 1, 3, 9, 3}, 5, 0, 0, a);
    EXPECT_EQ(r.participants.size(), 5u);
    EXPECT_DOUBLE_EQ(r.end_s, 9);
    EXPECT_EQ(r.wasted_client_s, 0.0);
    EXPECT_THROW(plan_sync_round({1}, {1, 2}, 1, 0, 0, a), Error);
}

TEST(System, SyncRoundDropsClientsThatGoOffline) {
    SystemOptions o;
    o.onoff = true;
    o.on_mean_s = 50;
    o.off_mean_s = 50;
    Availability probe(o, 3, 100);
    // A client online at t = 1000 and the end of its on period.
    int64_t k = 0;
    while (!probe.online(k, 1000.0)) ++k;
    const double until = probe.online_until(k, 1000.0);
    const double left = until - 1000.0;
    Availability a(o, 3, 100);
    const RoundPlan p = plan_sync_round({k}, {left + 1.0}, 1, 0, 1000.0, a);
    EXPECT_EQ(p.dropped_unavailable, (std::vector<int64_t>{k}));
    EXPECT_TRUE(p.participants.empty());
    EXPECT_DOUBLE_EQ(p.wasted_client_s, left);
    EXPECT_DOUBLE_EQ(p.end_s, until); // the server notices the disconnection
    Availability b(o, 3, 100);
    const RoundPlan q = plan_sync_round({k}, {left * 0.5}, 1, 0, 1000.0, b);
    EXPECT_EQ(q.participants, (std::vector<int64_t>{k}));
}

TEST(System, StalenessWeightsByHand) {
    EXPECT_EQ(staleness_weight(StalenessWeight::constant, 0.5, 7), 1.0);
    EXPECT_DOUBLE_EQ(staleness_weight(StalenessWeight::sqrt, 0.5, 3), 0.5);
    EXPECT_DOUBLE_EQ(staleness_weight(StalenessWeight::poly, 1.0, 1), 0.5);
    EXPECT_DOUBLE_EQ(staleness_weight(StalenessWeight::poly, 2.0, 0), 1.0);
    for (auto w : {StalenessWeight::constant, StalenessWeight::sqrt, StalenessWeight::poly})
        EXPECT_EQ(parse_staleness_weight(staleness_weight_name(w)), w);
    EXPECT_THROW(parse_staleness_weight("linear"), Error);
}

// Three always-on clients of 1, 2 and 4 s, all training at once, buffer 2, server step 0.5 s
// (worked out by hand in the comments).
TEST(System, AsyncScheduleByHand) {
    AsyncOptions o;
    o.concurrency = 3;
    o.buffer_size = 2;
    o.server_step_s = 0.5;
    SystemOptions always;
    AsyncSchedule s(o, {1.0, 2.0, 4.0}, 5, Availability(always, 5, 3));
    // t=1: client 0 buffered; t=2: client 1 fills the buffer, the server steps until 2.5.
    // Buffered clients stay busy, so no slot can start before then.
    const AsyncStep a = s.next();
    EXPECT_EQ(a.step, 0);
    EXPECT_EQ(a.start_s, 0.0);
    EXPECT_EQ(a.end_s, 2.5);
    ASSERT_EQ(a.members.size(), 2u);
    EXPECT_EQ(a.members[0].client, 0);
    EXPECT_EQ(a.members[1].client, 1);
    EXPECT_EQ(a.members[0].start_version, 0);
    EXPECT_EQ(a.members[1].end_s, 2.0);
    EXPECT_EQ(a.started, 3);
    // At 2.5 clients 0 and 1 restart from version 1 (until 3.5 and 4.5); client 2 (version 0)
    // finishes at 4 and fills the buffer with client 0: step 1 ends at 4.5, before client 1's
    // finish at the same instant (steps first). Staleness: client 0 has 0, client 2 has 1.
    const AsyncStep b = s.next();
    EXPECT_EQ(b.step, 1);
    EXPECT_EQ(b.start_s, 2.5);
    EXPECT_EQ(b.end_s, 4.5);
    ASSERT_EQ(b.members.size(), 2u);
    EXPECT_EQ(b.members[0].client, 0);
    EXPECT_EQ(b.members[0].start_version, 1);
    EXPECT_EQ(b.members[1].client, 2);
    EXPECT_EQ(b.members[1].start_version, 0);
    EXPECT_EQ(b.started, 2);
    EXPECT_EQ(s.steps_done(), 2);
    // In flight: client 1 (from version 1) and the restarted 0 and 2 (version 2).
    EXPECT_EQ(s.referenced_versions(), (std::vector<int64_t>{1, 2}));
}

TEST(System, AsyncScheduleIsAPureFunction) {
    AsyncOptions o;
    o.concurrency = 8;
    o.buffer_size = 3;
    o.max_staleness = 2;
    SystemOptions sys;
    sys.compute = {DistKind::lognormal, 0.01, 1.0};
    sys.onoff = true;
    sys.on_mean_s = 30;
    sys.off_mean_s = 10;
    std::vector<double> secs;
    for (int64_t k = 0; k < 40; ++k)
        secs.push_back(participation_seconds(client_profile(sys, 3, k), 100 + 7 * k, 0, 0));
    AsyncSchedule x(o, secs, 3, Availability(sys, 3, 40)), y(o, secs, 3, Availability(sys, 3, 40));
    int64_t stale = 0, offline = 0;
    double last = 0;
    for (int i = 0; i < 200; ++i) {
        const AsyncStep a = x.next(), b = y.next();
        ASSERT_EQ(a.members.size(), 3u);
        EXPECT_GT(a.end_s, last); // strictly increasing: every step takes server_step_s
        last = a.end_s;
        for (size_t j = 0; j < a.members.size(); ++j) {
            EXPECT_EQ(a.members[j].client, b.members[j].client);
            EXPECT_EQ(a.members[j].start_version, b.members[j].start_version);
            EXPECT_LE(a.step - a.members[j].start_version, 2); // max_staleness
            if (j > 0) {
                EXPECT_LT(a.members[j - 1].client, a.members[j].client);
            }
        }
        EXPECT_EQ(a.dropped_stale, b.dropped_stale);
        EXPECT_EQ(a.dropped_unavailable, b.dropped_unavailable);
        stale += int64_t(a.dropped_stale.size());
        offline += int64_t(a.dropped_unavailable.size());
    }
    EXPECT_GT(stale, 0); // both drop causes occur with these settings
    EXPECT_GT(offline, 0);
}

TEST(System, AsyncScheduleRejectsBadOptions) {
    SystemOptions always;
    AsyncOptions o;
    o.concurrency = 4;
    o.buffer_size = 2;
    EXPECT_THROW(AsyncSchedule(o, {1.0, 1.0}, 1, Availability(always, 1, 2)), Error); // > K
    o.concurrency = 2;
    o.buffer_size = 3;
    EXPECT_THROW(AsyncSchedule(o, {1.0, 1.0}, 1, Availability(always, 1, 2)), Error);
    o.buffer_size = 1;
    EXPECT_THROW(AsyncSchedule(o, {1.0, 0.0}, 1, Availability(always, 1, 2)), Error); // 0 s
}

// A trace file written here; returns its path.
std::string write_trace(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << text;
    return path;
}

TEST(System, AvailabilityTraceByHand) {
    // Client 1's intervals out of order; client 0 has none; client 2 two touching ones.
    const std::string path = write_trace("trace_ok.csv", "# comment\nclient,start_s,end_s\n"
                                                         "1,50,60\n1,10,20\n2,0,5\n2,5,8\n7,0,1\n");
    SystemOptions o;
    o.trace = std::make_shared<const AvailabilityTrace>(read_availability_trace(path, 3));
    ASSERT_EQ(o.trace->clients.size(), 3u);
    EXPECT_EQ(o.trace->ignored_lines, 1);            // client 7: not in a run of 3 clients
    EXPECT_EQ(o.trace->clients[1][0].start_s, 10.0); // sorted
    Availability a(o, 1, 4);
    EXPECT_FALSE(a.online(0, 0));
    EXPECT_EQ(a.next_online(0, 0), std::numeric_limits<double>::infinity());
    EXPECT_FALSE(a.online(1, 5));
    EXPECT_EQ(a.next_online(1, 5), 10.0);
    EXPECT_TRUE(a.online(1, 10)); // [start, end)
    EXPECT_EQ(a.online_until(1, 15), 20.0);
    EXPECT_FALSE(a.online(1, 20));
    EXPECT_EQ(a.next_online(1, 20), 50.0);
    EXPECT_EQ(a.online_until(1, 30), 30.0); // offline: t itself
    EXPECT_EQ(a.next_online(1, 60), std::numeric_limits<double>::infinity());
    EXPECT_EQ(a.online_until(2, 1), 8.0); // touching intervals: one online period
    EXPECT_TRUE(a.online(2, 5));
    EXPECT_FALSE(a.online(3, 1)); // beyond the listed ids: never online
}

TEST(System, AvailabilityTraceErrorsNameFileAndLine) {
    const auto error = [](const std::string& name, const std::string& text) {
        try {
            read_availability_trace(write_trace(name, text), 10);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    const std::string h = "client,start_s,end_s\n";
    EXPECT_NE(error("t1.csv", "client,start,end\n").find("t1.csv:1: expected the header"),
              std::string::npos);
    EXPECT_NE(error("t2.csv", h + "0,1\n").find("t2.csv:2: expected 3 fields"), std::string::npos);
    EXPECT_NE(error("t3.csv", h + "0,1,x\n").find("t3.csv:2: not a number"), std::string::npos);
    EXPECT_NE(error("t4.csv", h + "0,5,5\n").find("t4.csv:2: need 0 <= start_s < end_s"),
              std::string::npos);
    EXPECT_NE(error("t5.csv", h + "0,0,10\n1,0,1\n0,5,20\n")
                  .find("t5.csv:4: interval of client 0 overlaps the one on line 2"),
              std::string::npos);
    EXPECT_NE(error("t6.csv", "# only a comment\n").find("empty availability trace"),
              std::string::npos);
    EXPECT_THROW(read_availability_trace(::testing::TempDir() + "no-such-trace.csv", 10), Error);
}

// What pfcr synth writes (synth.trace_clients) is the on/off process itself.
TEST(System, GeneratedTraceEqualsTheOnOffProcess) {
    SystemOptions o;
    o.onoff = true;
    o.on_mean_s = 300;
    o.off_mean_s = 100;
    const std::string path = write_trace("gen.csv", availability_trace_csv(o, 9, 6, 5000));
    SystemOptions t;
    t.trace = std::make_shared<const AvailabilityTrace>(read_availability_trace(path, 6));
    Availability process(o, 9, 6), trace(t, 9, 6);
    for (int64_t k = 0; k < 6; ++k)
        for (double x = 0; x < 5000; x += 7.25)
            EXPECT_EQ(process.online(k, x), trace.online(k, x)) << "client " << k << " at " << x;
}

// Over-commitment met: the round closes when the c-th client finishes, even if another asked
// client goes offline later; the others' waste stops there too.
TEST(System, SyncRoundWithItsTargetIgnoresLaterDropouts) {
    const std::string path =
        write_trace("trace_sync.csv", "client,start_s,end_s\n0,0,1000\n1,0,90\n2,0,1000\n");
    SystemOptions o;
    o.trace = std::make_shared<const AvailabilityTrace>(read_availability_trace(path, 3));
    Availability a(o, 1, 3);
    // c = 1 of {0: 10 s, 1: 100 s (offline at 90), 2: 50 s}.
    const RoundPlan p = plan_sync_round({0, 1, 2}, {10.0, 100.0, 50.0}, 1, 0.0, 0.0, a);
    EXPECT_EQ(p.participants, (std::vector<int64_t>{0}));
    EXPECT_EQ(p.dropped_unavailable, (std::vector<int64_t>{1}));
    EXPECT_EQ(p.dropped_overcommit, (std::vector<int64_t>{2}));
    EXPECT_EQ(p.end_s, 10.0);
    EXPECT_EQ(p.wasted_client_s, 20.0); // clients 1 and 2 each stopped at 10 s
    // Short of the target (c = 2, one finisher): the server notices the dropout at 90 s.
    Availability b(o, 1, 3);
    const RoundPlan q = plan_sync_round({0, 1}, {10.0, 100.0}, 2, 0.0, 0.0, b);
    EXPECT_EQ(q.end_s, 90.0);
    EXPECT_EQ(q.wasted_client_s, 90.0);
}

} // namespace
} // namespace pfcr
