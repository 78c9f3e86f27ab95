"""The equivalent kernel (EK) and the renormalised EK, and how they relate to the replica result.

EK (Sollich & Williams 2005, "Understanding Gaussian process regression using the equivalent
kernel"): replacing the empirical loss (1/P) sum_mu (f(x_mu) - y_mu)^2 + (delta/P) |f|_H^2 by its
population average decouples the eigenmodes; per mode, minimising (a - c)^2 + (delta/P) a^2/lambda
gives the eigen-filter a = L c, L = lambda/(lambda + kappa_EK), kappa_EK = delta/P. The label noise
enters each mode's coefficient through (1/P) sum_mu eps_mu phi(x_mu), of variance sigma^2/P, so

    E_g^EK = sum_l [(1 - L_l)^2 v_l^2 + sigma^2 N_l L_l^2 / P].

Renormalised EK (after Cohen, Malka & Ringel 2021, "Learning curves for overparametrized deep
neural networks: a field theory perspective"), as implemented in
src/fieldcurve/theory/equivalent_kernel.py and docs/equivalent_kernel.md: modes with
lambda_i < kappa act as extra white noise, kappa_rEK = (delta + sum_{lambda_i < kappa_rEK} m_i lambda_i)/P,
solved by iterating kappa -> (delta + M(kappa))/P upwards from delta/P (the least fixed point).

Relation to the replica kappa equation P kappa = delta + kappa sum_i m_i lambda_i/(lambda_i + kappa)
(derivations/eigenlearning_kappa.py), verified here: the rEK does NOT solve it. Replacing the
learnabilities by the sharp split (L = 1 for lambda > kappa, L = lambda/kappa below) turns the
replica equation into P kappa = delta + kappa N_> + sum_{lambda_i<kappa} m_i lambda_i, i.e. the rEK
equation plus the term kappa N_> (N_> = number of modes above kappa), as the docstring says. At
large P (fixed spectrum, delta > 0) replica and EK errors agree to leading order,
E_g = sigma^2 M/P + O(1/P^2), and differ at O(1/P^2); the rEK equals the EK exactly once
delta/P < min lambda.

Asserts:
  1. the EK filter from the per-mode minimisation and the noise variance sigma^2/P per mode;
  2. sharp-split replica equation == rEK equation + kappa N_> (symbolic), and the replica kappa
     and the rEK kappa differ (each leaves a non-zero residual in the other's equation);
  3. large-P series (symbolic, two levels): kappa_replica = delta/P + delta M/P^2 + O(P^-3);
     E_g^replica - E_g^EK = O(1/P^2) with both = sigma^2 M/P + O(1/P^2);
  4. ``fc.equivalent_kernel_curve(spec, target, P, ridge, renormalised=False/True)`` gives
     kappa (exact rationals: delta/P and the least fixed point, found by enumerating the splits),
     bias, test_error and test_error_noisy equal to the formulas to 1e-12 relative on a 4-level
     spectrum (d = 3 kernel 1/2 + t/3 + t^2/6 + t^3/12) for ridge 0, 0.1, 1 and 9 values of P;
  5. the rEK fixed point is not unique in general; the library returns the least one (so at
     ridge 0 the rEK coincides with the EK, kappa = 0). Printed, and asserted as what the code does.
"""

import dataclasses
import time

import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()

# ---------------------------------------------------------------- 1. the EK filter and noise variance
a_, c_, lam_, delta_, P_, kappa_ = sp.symbols("a c lambda delta P kappa", positive=True)
objective = (a_ - c_) ** 2 + (delta_ / P_) * a_**2 / lam_  # population loss + RKHS penalty, one mode
a_opt = sp.solve(sp.diff(objective, a_), a_)[0]
assert sp.simplify(a_opt - lam_ / (lam_ + delta_ / P_) * c_) == 0
print("EK filter: a =", sp.simplify(a_opt / c_), "* c  (kappa_EK = delta/P)")
# noise in one mode's coefficient: (1/P) sum_mu eps_mu phi(x_mu), eps iid (0, sigma^2), E phi^2 = 1
Pn = 6
eps = sp.symbols(f"e1:{Pn + 1}")
ph = sp.symbols(f"phi1:{Pn + 1}")
sig2 = sp.Symbol("sigma2", positive=True)
noise_coef = sum(e * f for e, f in zip(eps, ph, strict=True)) / Pn
var = sp.expand(noise_coef**2)
var = var.subs({e * e2: 0 for e in eps for e2 in eps if e != e2}).subs({e**2: sig2 for e in eps})
var = var.subs({f**2: 1 for f in ph})
assert sp.simplify(var - sig2 / Pn) == 0
print(f"noise variance of one mode's coefficient (P = {Pn}): sigma^2/P")

# ---------------------------------------------------------------- 2. sharp split of the replica equation
lam_hi = sp.symbols("h1:3", positive=True)  # levels above kappa
lam_lo = sp.symbols("q1:3", positive=True)  # levels below kappa
m_hi = sp.symbols("mh1:3", positive=True)
m_lo = sp.symbols("mq1:3", positive=True)
replica_rhs_sharp = delta_ + kappa_ * (
    sum(m_hi) + sum(m * lv / kappa_ for m, lv in zip(m_lo, lam_lo, strict=True))
)
rek_rhs = delta_ + sum(m * lv for m, lv in zip(m_lo, lam_lo, strict=True))
assert sp.simplify(replica_rhs_sharp - (rek_rhs + kappa_ * sum(m_hi))) == 0
print("replica equation with sharp-split learnabilities == rEK equation + kappa * N_>")

# ---------------------------------------------------------------- 3. large-P series (two levels)
eps_ = sp.Symbol("epsilon", positive=True)  # 1/P
l1, l2, m1, m2, v1, v2 = sp.symbols("l1 l2 m1 m2 v1 v2", positive=True)
c2, c3 = sp.symbols("c2 c3")
k_ans = delta_ * eps_ + c2 * eps_**2 + c3 * eps_**3
# replica, multiplied by eps and by (l1 + kappa)(l2 + kappa) (a unit at eps = 0): a polynomial in eps
resid = sp.expand(
    (k_ans - eps_ * delta_) * (l1 + k_ans) * (l2 + k_ans)
    - eps_ * k_ans * (m1 * l1 * (l2 + k_ans) + m2 * l2 * (l1 + k_ans))
)
assert resid.coeff(eps_, 0) == 0 and sp.expand(resid.coeff(eps_, 1)) == 0
sol = sp.solve([resid.coeff(eps_, 2), resid.coeff(eps_, 3)], [c2, c3], dict=True)[0]
assert sp.simplify(sol[c2] - delta_ * (m1 + m2)) == 0
k_rep = k_ans.subs(sol)


def ek_error(kap, E0factor):
    L1, L2 = l1 / (l1 + kap), l2 / (l2 + kap)
    bias = (1 - L1) ** 2 * v1 + (1 - L2) ** 2 * v2
    if E0factor:  # replica
        E0 = 1 / (1 - eps_ * (m1 * L1**2 + m2 * L2**2))
        return E0 * (bias + sig2) - sig2
    return bias + sig2 * eps_ * (m1 * L1**2 + m2 * L2**2)


def taylor(expr, order):
    """Taylor coefficients of expr in eps at 0, up to ``order``."""
    return [sp.simplify(sp.diff(expr, eps_, j).subs(eps_, 0) / sp.factorial(j)) for j in range(order + 1)]


E_rep = taylor(ek_error(k_rep, True), 2)
E_ek = taylor(ek_error(delta_ * eps_, False), 2)
assert E_rep[0] == 0 and E_ek[0] == 0
assert sp.simplify(E_rep[1] - sig2 * (m1 + m2)) == 0
assert sp.simplify(E_ek[1] - sig2 * (m1 + m2)) == 0
second = sp.simplify(E_rep[2] - E_ek[2])
assert second != 0
print("large P: E_g(replica) = E_g(EK) = sigma^2 M/P + O(1/P^2); O(1/P^2) difference:", sp.factor(second))

# ---------------------------------------------------------------- 4. against the library
t = sp.Symbol("t")
D = 3
lams = fc.symbolic_spectrum(sp.Rational(1, 2) + t / 3 + t**2 / 6 + t**3 / 12, D, 3)
mults = [fc.multiplicity(D, l) for l in range(4)]
M = sum(mults)
spec = fc.spectrum(fc.polynomial_kernel([0.5, 1 / 3, 1 / 6, 1 / 12]), D, 3)
assert np.allclose(spec.eigenvalues, [float(v) for v in lams], rtol=1e-14, atol=0)
assert abs(spec.tail_mass) < 1e-15
spec = dataclasses.replace(spec, tail_mass=0.0)  # the exact spectrum has no mass beyond l = 3
powers = {1: sp.Integer(1), 2: sp.Rational(1, 2), 3: sp.Rational(1, 4)}
noise = sp.Rational(1, 20)
target = fc.Target.from_degree_powers({l: float(v) for l, v in powers.items()}, noise=float(noise), d=D)


def rek_fixed_points(ridge, p):
    """All kappa with kappa = (ridge + sum_{lambda < kappa} m lambda)/P, by enumerating the split."""
    order = sorted(range(len(lams)), key=lambda i: lams[i])
    out = []
    for k in range(len(order) + 1):
        below = order[:k]
        kap = (ridge + sum(mults[i] * lams[i] for i in below)) / sp.Integer(p)
        if all(lams[i] < kap for i in below) and all(lams[i] >= kap for i in order[k:]):
            out.append(kap)
    return out


def ek_formulas(kap, p):
    L = [lv / (lv + kap) if kap > 0 else sp.Integer(1) for lv in lams]
    bias = sum((1 - L[l]) ** 2 * powers.get(l, 0) for l in range(len(lams)))
    var = noise * sum(m * x**2 for m, x in zip(mults, L, strict=True)) / p
    return bias, bias + var


def close(got, ref, tol=1e-12):
    return abs(float(got) - float(ref)) <= tol * max(abs(float(ref)), 1e-300)


P_grid = [1, 2, 3, 5, 10, 20, 50, 200, 1000]
multiple = []
for ridge in (sp.Integer(0), sp.Rational(1, 10), sp.Integer(1)):
    ek = fc.equivalent_kernel_curve(spec, target, P_grid, ridge=float(ridge))
    rek = fc.equivalent_kernel_curve(spec, target, P_grid, ridge=float(ridge), renormalised=True)
    for i, p in enumerate(P_grid):
        fixed = rek_fixed_points(ridge, p)
        assert fixed and fixed[0] == min(fixed)
        if len(fixed) > 1:
            multiple.append((float(ridge), p, [float(f) for f in fixed]))
        for curve, kap in ((ek, ridge / p), (rek, fixed[0])):
            bias, test = ek_formulas(kap, p)
            assert close(curve.kappa[i], kap), (ridge, p, curve.kappa[i], kap)
            assert close(curve.bias[i], bias), (ridge, p, curve.bias[i], bias)
            assert close(curve.test_error[i], test), (ridge, p, curve.test_error[i], test)
            assert close(curve.test_error_noisy[i], test + noise)
            assert curve.overfitting[i] == 1.0
        # once delta/P is below every eigenvalue, the rEK is the EK
        if ridge / p < min(lams):
            assert fixed[0] == ridge / p
    # the rEK kappa is not the replica kappa (residual in the replica equation), for ridge > 0
    if ridge > 0:
        k_rep = fc.theory.solve_kappa([float(v) for v in lams], mults, float(ridge), [5])[0]
        k_rek = float(rek_fixed_points(ridge, 5)[0])
        res_rep_in_rek = (
            5 * k_rep
            - float(ridge)
            - sum(m * float(lv) for m, lv in zip(mults, lams, strict=True) if float(lv) < k_rep)
        )
        res_rek_in_rep = (
            5 * k_rek
            - float(ridge)
            - k_rek * sum(m * float(lv) / (float(lv) + k_rek) for m, lv in zip(mults, lams, strict=True))
        )
        assert abs(res_rep_in_rek) > 1e-3 and abs(res_rek_in_rep) > 1e-3
        print(f"  ridge {float(ridge)}, P = 5: kappa_replica = {k_rep:.6g}, kappa_rEK = {k_rek:.6g}")
print("fc.equivalent_kernel_curve (EK and rEK) == formulas with exact kappa")
print("rEK equations with several fixed points (ridge, P, fixed points; the library takes the least):")
for row in multiple:
    print("  ", row)
assert any(r == 0.0 for r, _, _ in multiple)  # ridgeless: kappa = 0 and a positive fixed point coexist
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: equivalent_kernel")
