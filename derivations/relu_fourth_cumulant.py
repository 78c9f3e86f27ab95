"""Exact finite-width fourth cumulant of a deep ReLU (and deep linear) network at initialisation.

Setting (Roberts, Yaida & Hanin, *The Principles of Deep Learning Theory*, 2022, ch. 4-5; cf.
Hanin & Nica 2019 for exact finite-width products): one input, hidden width n; given layer l, the
preactivations of layer l+1 are i.i.d. N(0, S_{l+1}) with the random variance

    S_{l+1} = C_b + (C_W/n) sum_{j=1}^n sigma(z_j)^2,    z_j | S_l  iid N(0, S_l),

and S_1 = C_b + C_W |x|^2/d deterministic (= C_W on the sphere, bias-free). For
sigma(z) = a min(z,0) + b max(z,0), sigma(z)^2 = S r with r independent of S,
E r = m = (a^2+b^2)/2, E r^2 = q = 3(a^4+b^4)/2 (ReLU: E relu(z)^2 = S/2, E relu(z)^4 = 3S^2/2,
derived here by integration). For n i.i.d. terms X_j, E[(sum X_j)^2] = n E[X^2] + n(n-1) E[X]^2, so

    E S_{l+1} = C_b + C_W m E S_l,
    E S_{l+1}^2 = C_b^2 + 2 C_b C_W m E S_l + C_W^2 (m^2 + (q - m^2)/n) E S_l^2.

Bias-free ReLU with C_W = 2: E S is constant and E S_{l+1}^2 = (1 + 5/n) E S_l^2, so the normalised
fourth cumulant E z^4/(3 (E z^2)^2) - 1 = E S^2/(E S)^2 - 1 of preactivation layer l is exactly
(1 + 5/n)^(l-1) - 1 = 5 (l-1)/n + O(1/n^2). Deep linear (a = b = 1, C_W = 1): (1 + 2/n)^(l-1) - 1.

Asserts:
  1. E relu(z)^2 = S/2 and E relu(z)^4 = 3 S^2/2 (sympy integrals), E[(sum_j X_j)^2] =
     n E X^2 + n(n-1)(E X)^2 (explicit for n = 4, symbolic moments), and the one-layer maps above,
     symbolically in n, C_W, C_b, a, b;
  2. the closed products (1 + 5/n)^(l-1) - 1 (ReLU, C_W = 2) and (1 + 2/n)^(l-1) - 1 (linear,
     C_W = 1) follow from the maps, symbolically in n, and their 1/n coefficients are 5(l-1), 2(l-1);
  3. ``fc.finite_width_statistics(fc.MLP(depth, "relu", 2.0, 0.0), n).fourth_cumulant_exact`` (array
     over preactivation layers 1..depth+1) equals (1 + 5/n)^(l-1) - 1 and ``.fourth_cumulant``
     equals 5 (l-1)/n, to 1e-13 relative, for several (depth, n); likewise the deep linear network
     (activation "identity", C_W = 1) with 2 instead of 5;
  4. with bias (ReLU C_b = 0.1, leaky ReLU abrelu(0.1, 1) with C_b = 0.2, per-layer C_W) the exact
     recursion evaluated in rationals equals ``fourth_cumulant_exact`` and its 1/n coefficient
     (sympy series) equals n * ``fourth_cumulant`` (the library's V/(n K^2)), to 1e-12 relative.
"""

import time

import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()
z = sp.Symbol("z", real=True)
S, n, CW, Cb = sp.symbols("S n C_W C_b", positive=True)
a, b = sp.symbols("a b", real=True)
ES, ES2 = sp.symbols("ES ES2", positive=True)  # E S_l, E S_l^2

# ---------------------------------------------------------------- 1. one-layer maps
density = sp.exp(-(z**2) / (2 * S)) / sp.sqrt(2 * sp.pi * S)
m2_relu = sp.integrate(z**2 * density, (z, 0, sp.oo))
m4_relu = sp.integrate(z**4 * density, (z, 0, sp.oo))
assert sp.simplify(m2_relu - S / 2) == 0 and sp.simplify(m4_relu - 3 * S**2 / 2) == 0
# a min(z,0) + b max(z,0): the two half-lines contribute a^k resp. b^k times the ReLU moments
m_ab = sp.simplify((a**2 + b**2) * m2_relu / S)
q_ab = sp.simplify((a**4 + b**4) * m4_relu / S**2)
assert sp.simplify(m_ab - (a**2 + b**2) / 2) == 0 and sp.simplify(q_ab - 3 * (a**4 + b**4) / 2) == 0
print("E relu(z)^2 =", m2_relu, "; E relu(z)^4 =", m4_relu)

# E[(sum_j X_j)^2] for i.i.d. X_j with E X = mu1, E X^2 = mu2: explicit for 4 terms
mu1, mu2 = sp.symbols("mu1 mu2", positive=True)
X = sp.symbols("X1:5")
sq = sp.Poly(sp.expand(sum(X) ** 2), *X)
moment = sum(
    c * sp.prod([{0: 1, 1: mu1, 2: mu2}[k] for k in mon]) for mon, c in sq.terms()
)  # independence: E of a monomial is the product of the factors' moments
assert sp.expand(moment - (4 * mu2 + 4 * 3 * mu1**2)) == 0

# given S_l: X_j = sigma(z_j)^2 with E X = m S_l, E X^2 = q S_l^2
cond_mean = Cb + CW / n * n * m_ab * S
cond_sq = (
    Cb**2 + 2 * Cb * CW / n * n * m_ab * S + (CW / n) ** 2 * (n * q_ab * S**2 + n * (n - 1) * (m_ab * S) ** 2)
)
# average over S_l (linear in S and S^2)
next_ES = cond_mean.subs(S, ES)
c0, c1, c2 = (sp.Poly(cond_sq, S).coeff_monomial(S**k) for k in range(3))
assert sp.Poly(cond_sq, S).degree() == 2
next_ES2 = c0 + c1 * ES + c2 * ES2
m_, q_ = (a**2 + b**2) / 2, 3 * (a**4 + b**4) / 2
assert sp.simplify(next_ES2 - (Cb**2 + 2 * Cb * CW * m_ * ES + CW**2 * (m_**2 + (q_ - m_**2) / n) * ES2)) == 0
print("E S' = C_b + C_W m E S;  E S'^2 = C_b^2 + 2 C_b C_W m E S + C_W^2 (m^2 + (q - m^2)/n) E S^2")


def exact_moments(ab, weight_vars, bias_vars, width, input_norm2=1):
    """(E S_l, E S_l^2) for layers l = 1..L+1 from the maps above, in exact arithmetic."""
    e1 = bias_vars[0] + weight_vars[0] * input_norm2
    e2 = e1**2
    out = [(e1, e2)]
    for cw, cb in zip(weight_vars[1:], bias_vars[1:], strict=True):
        sub = {a: ab[0], b: ab[1], CW: cw, Cb: cb, n: width, ES: e1, ES2: e2}
        e1, e2 = sp.cancel(next_ES.subs(sub)), sp.cancel(next_ES2.subs(sub))
        out.append((e1, e2))
    return out


# ---------------------------------------------------------------- 2. the closed products
ell = 6
for ab, cw, c in (((0, 1), 2, 5), ((1, 1), 1, 2)):
    moments = exact_moments(ab, [cw] * ell, [0] * ell, n)
    for layer, (e1, e2) in enumerate(moments, start=1):
        cumulant = sp.simplify(e2 / e1**2 - 1)
        assert sp.simplify(cumulant - ((1 + sp.Integer(c) / n) ** (layer - 1) - 1)) == 0
        lead = sp.limit(cumulant * n, n, sp.oo)
        assert lead == c * (layer - 1)
    print(f"a, b = {ab}, C_W = {cw}: cumulant of layer l = (1 + {c}/n)^(l-1) - 1 = {c}(l-1)/n + O(1/n^2)")

# ---------------------------------------------------------------- 3. the library, bias-free
worst = 0.0
for act, cw, c in (("relu", 2.0, 5), ("identity", 1.0, 2)):
    for depth, width in ((1, 20), (3, 64), (5, 100), (8, 256), (12, 1000)):
        st = fc.finite_width_statistics(fc.MLP(depth, act, cw, 0.0), width)
        layers = np.arange(1, depth + 2)
        exact = (1 + c / width) ** (layers - 1) - 1
        lead = c * (layers - 1) / width
        assert st.fourth_cumulant_exact.shape == (depth + 1,)
        for got, ref in ((st.fourth_cumulant_exact, exact), (st.fourth_cumulant, lead)):
            err = np.abs(got - ref) / np.where(ref > 0, ref, 1.0)
            worst = max(worst, float(err.max()))
            assert err.max() < 1e-13, (act, depth, width, got, ref)
print(f"fc.finite_width_statistics bias-free ReLU / linear == exact products (worst {worst:.1e})")

# ---------------------------------------------------------------- 4. with bias
cases = [
    (fc.MLP(4, "relu", 2.0, 0.1), (0, 1), [2] * 5, [sp.Rational(1, 10)] * 5),
    (
        fc.MLP(3, fc.activations.abrelu(0.1, 1.0), [1.5, 2.0, 1.8, 1.0], 0.2),
        (sp.Rational(1, 10), 1),
        [sp.Rational(3, 2), 2, sp.Rational(9, 5), 1],
        [sp.Rational(1, 5)] * 4,
    ),
]
for mlp, ab, wvs, bvs in cases:
    for width in (50, 400):
        st = fc.finite_width_statistics(mlp, width)
        moments = exact_moments(ab, wvs, bvs, sp.Integer(width))
        exact = np.array([float(e2 / e1**2 - 1) for e1, e2 in moments])
        assert np.allclose(st.fourth_cumulant_exact, exact, rtol=1e-12, atol=1e-15), (
            st.fourth_cumulant_exact,
            exact,
        )
    # leading order in 1/n, symbolically
    moments = exact_moments(ab, wvs, bvs, n)
    lead = np.array([float(sp.limit(n * (e2 / e1**2 - 1), n, sp.oo)) for e1, e2 in moments])
    st = fc.finite_width_statistics(mlp, 1000)
    assert np.allclose(1000 * st.fourth_cumulant, lead, rtol=1e-12, atol=1e-15), (
        1000 * st.fourth_cumulant,
        lead,
    )
    print(f"{mlp.activation.name} with bias: exact recursion and its 1/n coefficient == library")
print(f"time {time.perf_counter() - start:.1f} s")
print("OK: relu_fourth_cumulant")
