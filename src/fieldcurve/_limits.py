"""The documented limits of every size-like input of the command line and of the polynomial parser.

Each limit keeps the work (time and memory) of one command proportional to what was asked and
within a desktop machine: an input beyond a limit is refused up front, with one line that names
the parameter and the limit, before anything is computed. The README's "Limits" table lists
these values (``tests/test_readme.py`` checks that it matches this module).

Measured on one core (2 cores shared): ``spectrum --lmax 1000`` 40 s, ``--lmax 2000`` 100 s
(250 MB), ``--lmax 5000`` 248 s (1.2 GB); ``spectrum --activation tanh --depth 100`` 53 s.
"""

from __future__ import annotations

import math

__all__ = [
    "MAX_DATA_ROWS",
    "MAX_DEPTH",
    "MAX_DIMENSION",
    "MAX_EMPIRICAL_ENTRIES",
    "MAX_EMPIRICAL_FLOPS",
    "MAX_EMPIRICAL_P",
    "MAX_FW_TRIALS",
    "MAX_LIST",
    "MAX_LMAX",
    "MAX_MAGNITUDE",
    "MAX_MC_NETWORKS",
    "MAX_MC_WIDTH",
    "MAX_MC_WORK",
    "MAX_MONOMIAL_ORDER",
    "MAX_P",
    "MAX_POLY_CHARS",
    "MAX_POLY_COEFF_BITS",
    "MAX_POLY_DEGREE",
    "MAX_POLY_NESTING",
    "MAX_POLY_TERMS",
    "MAX_P_POINTS",
    "MAX_SEED",
    "MAX_TARGET_DEGREE",
    "MAX_TRIALS",
    "MAX_WIDTH",
    "empirical_flops",
]

#: Highest spectral degree (``--lmax``).
MAX_LMAX = 2000
#: Highest degree of a ``--powers`` target (the default lmax is this degree + 10).
MAX_TARGET_DEGREE = 500
#: Hidden layers (``--depth``, ``--depths``).
MAX_DEPTH = 100
#: Input dimension ``--d``.
MAX_DIMENSION = 100_000
#: Largest sample size of a ``--P`` grid, and the most points a grid may have.
MAX_P = 10**8
MAX_P_POINTS = 1000
#: ``--empirical`` (exact kernel regression): sample sizes it covers, trials, and the work:
#: trials x sum(P^3)/3 floating-point operations, and P x d entries of one training set.
MAX_EMPIRICAL_P = 4000
MAX_TRIALS = 10_000
MAX_EMPIRICAL_FLOPS = 2e13
MAX_EMPIRICAL_ENTRIES = 50_000_000
#: ``--fw-trials`` (training sets per P of the finite-width correction).
MAX_FW_TRIALS = 1000
#: Rows of a data set (``--data``, ``--dataset``): the M x M Gram matrices and their
#: eigendecomposition (three M x M float64 arrays: 2.4 GB at the limit).
MAX_DATA_ROWS = 10_000
#: ``finite-width --mc``: random networks, and networks x (depth + 1) x width^2 multiply-adds.
MAX_MC_NETWORKS = 10**8
MAX_MC_WORK = 1e12
#: ``finite-width --mc``: widest network simulated (a width x width weight block per network).
MAX_MC_WIDTH = 4096
#: Hidden width ``--width`` / ``--widths``.
MAX_WIDTH = 10**6
#: ``monomial(k)`` activations: k <= this (E[u^2k] overflows double precision near k = 150).
MAX_MONOMIAL_ORDER = 50
#: Seeds: 0 <= seed <= MAX_SEED (a signed 64-bit integer, as the results store keeps it).
MAX_SEED = 2**63 - 1
#: Comma lists (``--depths``, ``--activations``, ``--widths``, ``--powers`` pairs).
MAX_LIST = 100
#: Variances, noise, ridge and target powers: finite and at most this.
MAX_MAGNITUDE = 1e100
#: Polynomial targets (``--polynomial``): characters, parenthesis nesting, total degree (also
#: the largest exponent), terms of any intermediate expansion, and bits of any coefficient.
MAX_POLY_CHARS = 10_000
MAX_POLY_NESTING = 50
MAX_POLY_DEGREE = 20
MAX_POLY_TERMS = 1000
MAX_POLY_COEFF_BITS = 2048


def empirical_flops(P: list[float] | tuple[float, ...], trials: int) -> float:
    """Floating-point operations of ``trials`` exact kernel regressions at each sample size P
    (one Cholesky factorisation, P^3/3, per P and trial)."""
    return float(trials) * math.fsum(float(p) ** 3 / 3 for p in P)
