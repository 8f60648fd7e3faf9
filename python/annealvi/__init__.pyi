"""Type stubs of annealvi (see the docstrings in annealvi/__init__.py)."""

import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import schedule as schedule
from ._target import Target as Target, bimodal as bimodal
from ._experiment import (
    Experiment as Experiment,
    GaussianMixture as GaussianMixture,
    RealNVP as RealNVP,
    Run as Run,
    Trajectory as Trajectory,
)
from ._sweep import (
    SweepResult as SweepResult,
    Table as Table,
    run_sweep as run_sweep,
    sweep as sweep,
)

__version__: str

ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]", None]
ArrayLike = Union[float, int, npt.ArrayLike]

def collapse_probability(
    beta_i: ArrayLike,
    t0: ArrayLike,
    *,
    d: int = ...,
    r: float = ...,
    w_star: float = ...,
    lr: float = ...,
    init_scale: float = ...,
    extra_steps: int = ...,
    method: str = ...,
    ics: int = ...,
    seed: int = ...,
) -> Dict[str, np.ndarray]: ...
def design(
    max_collapse: float,
    *,
    d: int = ...,
    r: float = ...,
    w_star: float = ...,
    lr: float = ...,
    init_scale: float = ...,
    extra_steps: int = ...,
    ics: int = ...,
    seed: int = ...,
    check_seeds: int = ...,
    samples: int = ...,
    t_range: Tuple[float, float] = ...,
) -> Dict[str, Any]: ...
def ode_trajectory(
    beta_i: float,
    t0: float,
    *,
    steps: Optional[int] = ...,
    every: int = ...,
    d: int = ...,
    r: float = ...,
    w_star: float = ...,
    lr: float = ...,
    init_scale: float = ...,
    sigma0: Optional[float] = ...,
    seed: int = ...,
    run: int = ...,
    quasi_static: bool = ...,
) -> Dict[str, np.ndarray]: ...
def train(
    config: ConfigSource = ...,
    *,
    run: int = ...,
    user_target: Optional[Target] = ...,
    progress: Any = ...,
    **overrides: Any,
) -> Dict[str, Dict[str, Any]]: ...
def resolve_config(config: ConfigSource = ..., **overrides: Any) -> str: ...
