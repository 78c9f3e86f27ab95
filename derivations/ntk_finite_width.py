"""The finite-width NTK mean, exactly, for a quadratic network; and why ReLU's diagonal has no shift.

Setting: NTK parameterisation, hidden width n, depth 2 (preactivation layers 1, 2 and the output
3), activation sigma(z) = z^2, weight variances C2 (layer 1 -> 2) and C3 (read-out), bias variances
b2, b3; the first layer's kernel on a pair of inputs is K = [[K_aa, K_ab], [K_ab, K_bb]]. The NTK is
Theta = B_1 S_1 + B_2 S_2 + S_3 with B_l = d_l(a).d_l(b) (backward overlaps, d_l = df/dz_l) and
S_l the fan-in factors C_b + C_W sigma(z_{l-1}(a)).sigma(z_{l-1}(b))/n (S_1 = K_ab). Averaging
over the read-out weights v, then the layer-2 weights W (W_ij ~ N(0, 1), z_2 = sqrt(C2/n) W s + b
with s_k = sigma(z_1k)), then the i.i.d. pairs (u, v) = (z_1k(a), z_1k(b)) ~ N(0, K), every
expectation is a polynomial in 1/n; sums of i.i.d. terms use E[sum_j X_j sum_k Y_k] =
n E[XY] + n (n - 1) E[X] E[Y]. The result is *exactly*

    E Theta = Theta + H / n,  H_ab = C2^2 C3 [16 K_ab (3 E u^3 v^3 - E uv E u^2 v^2)
                                            + 6 Var(u^2 v^2) + Cov(u^4, v^4)],

(H_aa = 1344 C2^2 C3 K_aa^4 on the diagonal), an exact oracle for the O(1/n) theory of
``fieldcurve.finite_width_statistics`` (``ntk_nlo``, diagonal) and ``fieldcurve.ntk_correction``
(every entry, pair recursion with finite differences).

For ReLU (any piecewise-linear activation) the one-input theory's O(1/n) shift is zero with or
without biases; the step that makes it vanish is E[zt^2 1(zt + b > 0)] = Var(zt)/2 for independent
centred Gaussians zt, b (sign symmetry), derived here by integration.

Asserts:
  1. the Gaussian moments by differentiating the moment-generating function;
  2. E Theta - Theta = H/n exactly (sympy, symbolic in n, C2, C3, b2, b3, K);
  3. H equals ``finite_width_statistics(...).ntk_nlo`` (1e-12) and ``ntk_correction(...).ntk_nlo``
     (1e-8 relative: finite differences) at several parameter values and input pairs;
  4. E[zt^2 1(zt + b > 0)] = Var(zt)/2 (sympy integral), and ``ntk_nlo`` of ReLU / leaky ReLU
     networks with biases is 0 on the diagonal (1e-12 relative).
"""

import time

import numpy as np
import sympy as sp

import fieldcurve as fc

start = time.perf_counter()
n, C2, C3, b2, b3 = sp.symbols("n C_2 C_3 b_2 b_3", positive=True)
Kaa, Kbb = sp.symbols("K_aa K_bb", positive=True)
Kab = sp.Symbol("K_ab", real=True)
t1, t2 = sp.symbols("t1 t2", real=True)

# ---------------------------------------------------------------- 1. Gaussian moments E u^i v^j
mgf = sp.exp((Kaa * t1**2 + 2 * Kab * t1 * t2 + Kbb * t2**2) / 2)


def E(i: int, j: int) -> sp.Expr:
    return sp.expand(sp.diff(mgf, t1, i, t2, j).subs({t1: 0, t2: 0}))


assert E(1, 1) == Kab and sp.expand(E(2, 2) - (Kaa * Kbb + 2 * Kab**2)) == 0
assert sp.expand(E(3, 3) - (9 * Kaa * Kbb * Kab + 6 * Kab**3)) == 0

# ---------------------------------------------------------------- 2. E Theta exactly in n
# sigma = z^2, sigma' = 2z; s_k(c) = z_1k(c)^2.
# B_1 S_1: E_v d_2(a)_i d_2(b)_i = (C3/n) sigma'(z_2i(a)) sigma'(z_2i(b)); then
# d_1(c)_j = sigma'(z_1j(c)) sqrt(C2/n) sum_i W_ij d_2(c)_i, so
# E_{v} B_1 = (C2 C3 / n^2) sum_ij 4 u_j v_j W_ij^2 4 z_2i(a) z_2i(b), and over W, b (Isserlis):
# E[W_ij^2 z_2i(a) z_2i(b)] = (C2/n)(2 s_j(a) s_j(b) + s(a).s(b)) + b2.
# Over the layer-1 pairs: sum_j u_j v_j s_j(a) s_j(b) -> n E u^3 v^3,
# sum_j u_j v_j (s(a).s(b)) -> n E u^3v^3 + n(n-1) E uv E u^2v^2, sum_j u_j v_j -> n E uv.
EB1 = (
    (16 * C2 * C3 / n**2)
    * n
    * ((C2 / n) * (2 * n * E(3, 3) + n * E(3, 3) + n * (n - 1) * E(1, 1) * E(2, 2)) + b2 * n * E(1, 1))
)
term1 = sp.expand(EB1 * Kab)
# B_2 S_2: E_v B_2 = (C3/n) sum_i 4 z_2i(a) z_2i(b); given layer 1, E z_2i(a) z_2i(b) = S_2ab, so
# E[B_2 S_2] = 4 C3 E[S_2ab^2] with S_2ab = b2 + (C2/n) sum_k s_k(a) s_k(b).
ES2ab_sq = b2**2 + 2 * b2 * C2 * E(2, 2) + C2**2 * (E(4, 4) / n + (1 - 1 / n) * E(2, 2) ** 2)
term2 = sp.expand(4 * C3 * ES2ab_sq)
# S_3: E[sigma(z_2(a)) sigma(z_2(b)) | layer 1] = E[z_a^2 z_b^2] = S_2aa S_2bb + 2 S_2ab^2;
# E[S_2aa S_2bb] = b2^2 + b2 C2 (E u^4 + E v^4) + C2^2 (E u^4 v^4 / n + (1 - 1/n) E u^4 E v^4).
ES2aa_S2bb = b2**2 + b2 * C2 * (E(4, 0) + E(0, 4)) + C2**2 * (E(4, 4) / n + (1 - 1 / n) * E(4, 0) * E(0, 4))
term3 = sp.expand(b3 + C3 * (ES2aa_S2bb + 2 * ES2ab_sq))
ETheta = sp.expand(term1 + term2 + term3)
Theta = sp.limit(ETheta, n, sp.oo)
var_u2v2 = E(4, 4) - E(2, 2) ** 2
cov_u4v4 = E(4, 4) - E(4, 0) * E(0, 4)
H = C2**2 * C3 * (16 * Kab * (3 * E(3, 3) - E(1, 1) * E(2, 2)) + 6 * var_u2v2 + cov_u4v4)
assert sp.simplify(ETheta - Theta - H / n) == 0
H_diag = sp.expand(H.subs({Kbb: Kaa, Kab: Kaa}))
assert sp.expand(H_diag - 1344 * C2**2 * C3 * Kaa**4) == 0
# the infinite-width limit is the NTK recursion: Theta_3 = K_3 + chi_2 (K_2 + chi_1 K_1)
K2 = b2 + C2 * E(2, 2)
K2aa, K2bb = b2 + C2 * E(4, 0), b2 + C2 * E(0, 4)
K3 = b3 + C3 * (K2aa * K2bb + 2 * K2**2)
ntk = K3 + C3 * 4 * K2 * (K2 + C2 * 4 * Kab * Kab)
assert sp.simplify(Theta - ntk) == 0
print("H_ab =", sp.factor(H))

# ---------------------------------------------------------------- 3. against the library
sq = fc.activations.monomial(2)
rng = np.random.default_rng(0)
for c2, c3, bb2, bb3, d in [(1.0, 1.0, 0.0, 0.0, 4), (0.7, 1.3, 0.2, 0.1, 6), (1.4, 0.6, 0.5, 0.0, 3)]:
    mlp = fc.MLP(2, sq, [1.1, c2, c3], [0.15, bb2, bb3])
    X = fc.sample_sphere(3, d, seed=rng)
    G = 0.15 + 1.1 * X @ X.T / d
    lib = fc.ntk_correction(mlp, X).ntk_nlo
    for i in range(3):
        for j in range(3):
            subs = {C2: c2, C3: c3, b2: bb2, b3: bb3, Kaa: G[i, i], Kbb: G[j, j], Kab: G[i, j]}
            exact = float(H.subs(subs))
            assert abs(lib[i, j] - exact) <= 1e-8 * abs(exact), (i, j, lib[i, j], exact)
    stats = fc.finite_width_statistics(mlp, 16, input_norm2=1.0)  # K_1 = 0.15 + 1.1
    exact = float(H_diag.subs({C2: c2, C3: c3, Kaa: 0.15 + 1.1}))
    assert abs(stats.ntk_nlo[-1] - exact) <= 1e-12 * exact, (stats.ntk_nlo[-1], exact)

# ---------------------------------------------------------------- 4. piecewise-linear: no diagonal shift
zt, b = sp.symbols("zt b", real=True)
s_z, s_b = sp.symbols("s_z s_b", positive=True)
r, phi = sp.symbols("r phi", positive=True)
# polar coordinates of (zt/s_z, b/s_b); zt + b > 0 is the half-plane of angles within pi/2 of
# the direction (s_z, s_b), i.e. phi in (alpha - pi/2, alpha + pi/2), alpha = atan2(s_b, s_z)
alpha = sp.atan2(s_b, s_z)
integrand = (s_z * r * sp.cos(phi)) ** 2 * sp.exp(-(r**2) / 2) / (2 * sp.pi) * r
radial = sp.integrate(integrand, (r, 0, sp.oo))
half = sp.simplify(sp.integrate(radial, (phi, alpha - sp.pi / 2, alpha + sp.pi / 2)))
assert sp.simplify(half - s_z**2 / 2) == 0
print("E[zt^2 1(zt + b > 0)] =", half)
for act, cw, cb in [("relu", 2.0, 0.3), (fc.activations.abrelu(0.2, 1.0), 1.7, 0.1), ("relu", 1.5, 0.0)]:
    st = fc.finite_width_statistics(fc.MLP(5, act, cw, cb), 32)
    assert np.all(np.abs(st.ntk_nlo) <= 1e-12 * st.ntk), st.ntk_nlo

print(f"OK: ntk_finite_width ({time.perf_counter() - start:.1f} s)")
