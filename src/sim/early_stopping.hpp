// RecBole's early stopping, as PFCR's fine-tuning uses it: validation scores are rounded to 4
// decimals (metric_decimal_place = 4); a score >= the best so far counts as an improvement
// (ties move the best epoch forward); training stops once the streak of non-improving epochs
// exceeds stopping_step. Pure bookkeeping, no training; unit-tested in tests/sim.
#pragma once

#include <cmath>
#include <cstdint>

namespace pfcr {

class EarlyStopping {
public:
    explicit EarlyStopping(int64_t stopping_step) : patience_(stopping_step) {}

    // Records the validation score of `epoch`; returns true if it is the new best.
    bool update(int64_t epoch, double score) {
        const double rounded = std::round(score * 1e4) / 1e4;
        if (rounded >= best_score_) {
            best_score_ = rounded;
            best_epoch_ = epoch;
            bad_ = 0;
            return true;
        }
        ++bad_;
        return false;
    }
    bool should_stop() const { return bad_ > patience_; }
    // What a fine-tuning checkpoint keeps to resume the count (with best_epoch, best_score).
    int64_t bad_epochs() const { return bad_; }
    void restore(double best_score, int64_t best_epoch, int64_t bad_epochs) {
        best_score_ = best_score;
        best_epoch_ = best_epoch;
        bad_ = bad_epochs;
    }
    int64_t best_epoch() const { return best_epoch_; } // -1 before the first update
    double best_score() const { return best_score_; }

private:
    int64_t patience_;
    double best_score_ = -1;
    int64_t best_epoch_ = -1;
    int64_t bad_ = 0;
};

} // namespace pfcr
