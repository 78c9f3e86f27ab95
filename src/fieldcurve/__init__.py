"""fieldcurve: predict the learning curve of a neural network before it is trained.

Public API (re-exported names only); see the README for conventions. Note that
``fieldcurve.spectrum`` is the function; the module is ``importlib.import_module(
"fieldcurve.spectrum")`` (or ``from fieldcurve.spectrum import ...``).
"""

from fieldcurve import activations
from fieldcurve.activations import Activation, get_activation
from fieldcurve.empirical import EmpiricalCurve, empirical_dataset_curve, empirical_learning_curve
from fieldcurve.finite_width import (
    CriticalPoint,
    FiniteWidthStatistics,
    NTKMatrixMonteCarlo,
    NTKMonteCarlo,
    critical_initialization,
    finite_width_statistics,
    monte_carlo_ntk,
    monte_carlo_ntk_matrix,
    monte_carlo_statistics,
)
from fieldcurve.finite_width_ntk import NTKCorrection, ntk_correction
from fieldcurve.finite_width_posterior import (
    KernelFluctuations,
    PosteriorCorrection,
    kernel_fluctuations,
    posterior_correction,
)
from fieldcurve.kernels import (
    MLP,
    DotProductKernel,
    Kernel,
    MLPKernel,
    as_kernel,
    exponential_kernel,
    nngp_kernel,
    nngp_ntk_gram,
    ntk_kernel,
    polynomial_kernel,
)
from fieldcurve.spectrum import Spectrum, gram_spectrum, spectrum, symbolic_spectrum
from fieldcurve.sphere import (
    harmonic_features,
    legendre,
    log_multiplicity,
    multiplicity,
    sample_sphere,
    zonal_harmonic,
)
from fieldcurve.targets import SampledTarget, Target
from fieldcurve.theory import (
    DatasetSpectrum,
    FiniteWidthCurve,
    LearningCurve,
    dataset_learning_curve,
    dataset_spectrum,
    equivalent_kernel_curve,
    finite_width_learning_curve,
    learning_curve,
    network_learning_curve,
)
from fieldcurve.tuning import TuneResult, tune

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Activation",
    "CriticalPoint",
    "DatasetSpectrum",
    "DotProductKernel",
    "EmpiricalCurve",
    "FiniteWidthCurve",
    "FiniteWidthStatistics",
    "Kernel",
    "KernelFluctuations",
    "LearningCurve",
    "MLPKernel",
    "NTKCorrection",
    "NTKMatrixMonteCarlo",
    "NTKMonteCarlo",
    "PosteriorCorrection",
    "SampledTarget",
    "Spectrum",
    "Target",
    "TuneResult",
    "__version__",
    "activations",
    "as_kernel",
    "critical_initialization",
    "dataset_learning_curve",
    "dataset_spectrum",
    "empirical_dataset_curve",
    "empirical_learning_curve",
    "equivalent_kernel_curve",
    "exponential_kernel",
    "finite_width_learning_curve",
    "finite_width_statistics",
    "get_activation",
    "gram_spectrum",
    "harmonic_features",
    "kernel_fluctuations",
    "learning_curve",
    "legendre",
    "log_multiplicity",
    "monte_carlo_ntk",
    "monte_carlo_ntk_matrix",
    "monte_carlo_statistics",
    "multiplicity",
    "network_learning_curve",
    "nngp_kernel",
    "nngp_ntk_gram",
    "ntk_correction",
    "ntk_kernel",
    "polynomial_kernel",
    "posterior_correction",
    "sample_sphere",
    "spectrum",
    "symbolic_spectrum",
    "tune",
    "zonal_harmonic",
]
