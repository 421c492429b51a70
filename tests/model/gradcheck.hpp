// Central-difference gradient checks in double precision, shared by every layer test.
// Criterion (documented once, used everywhere): for each tensor, the norm-wise relative error
//   ||g_analytic - g_numeric|| / max(||g_analytic||, ||g_numeric||, 1e-12)  <=  tol (1e-6)
// with g_numeric[i] = (f(x + h e_i) - f(x - h e_i)) / (2h), h = 1e-5. In double precision the
// truncation error is O(h^2) ~ 1e-10 and the rounding error ~ eps/h ~ 1e-11, so 1e-6 leaves
// four orders of margin while any wrong gradient line (errors of O(1)) fails.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace pfcr::test {

// f() evaluates the scalar loss from the current contents of x (which the check perturbs in
// place and restores). Returns the norm-wise relative error against `analytic`.
inline double gradcheck_rel_error(std::vector<double>& x, const std::vector<double>& analytic,
                                  const std::function<double()>& f, double h = 1e-5) {
    double diff2 = 0, a2 = 0, n2 = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + h;
        const double fp = f();
        x[i] = saved - h;
        const double fm = f();
        x[i] = saved;
        const double num = (fp - fm) / (2 * h);
        diff2 += (analytic[i] - num) * (analytic[i] - num);
        a2 += analytic[i] * analytic[i];
        n2 += num * num;
    }
    const double denom = std::max({std::sqrt(a2), std::sqrt(n2), 1e-12});
    return std::sqrt(diff2) / denom;
}

// A fixed random projection of an output tensor to a scalar, so that every output element
// gets a distinct, non-trivial upstream gradient: loss = sum_i w_i * out_i.
inline std::vector<double> probe_weights(size_t n, unsigned seed = 1) {
    std::vector<double> w(n);
    unsigned s = seed * 2654435761u + 12345u;
    for (auto& v : w) {
        s = s * 1664525u + 1013904223u;
        v = double(s >> 8) / double(1u << 24) * 2.0 - 1.0;
    }
    return w;
}

} // namespace pfcr::test
