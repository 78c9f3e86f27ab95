"""Train real networks and check fieldcurve's predictions against them (``pip install
fieldcurve[validation]``).

Modules: :mod:`~fieldcurve.validation.networks` (JAX MLPs matching :class:`fieldcurve.MLP`),
:mod:`~fieldcurve.validation.training` (gradient descent, Langevin dynamics, ensembles).
Importing a JAX-backed name needs the ``validation`` extra; the names load lazily so that the
rest of fieldcurve never imports JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "init_mlp": "networks",
    "apply_mlp": "networks",
    "empirical_ntk": "networks",
    "empirical_kernels": "networks",
    "jax_activation": "networks",
    "GDResult": "training",
    "LangevinResult": "training",
    "gd_train": "training",
    "gd_train_ensemble": "training",
    "langevin_sample": "training",
    "posterior_test_error": "training",
    "posterior_test_error_se": "training",
    "effective_sample_size": "training",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'fieldcurve.validation' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"fieldcurve.validation.{_LAZY[name]}")
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"fieldcurve.validation.{name} needs JAX: pip install 'fieldcurve[validation]' ({exc})"
        ) from exc
    return getattr(module, name)
