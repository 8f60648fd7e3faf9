"""Type stubs of annealvi (see the docstrings in annealvi/__init__.py)."""

import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import schedule as schedule
from ._target import Target as Target, bimodal as bimodal
from ._sweep import (
    SweepResult as SweepResult,
    Table as Table,
    run_sweep as run_sweep,
    sweep as sweep,
)
from ._theory import (
    CollapseProbability as CollapseProbability,
    Design as Design,
    collapse_probability as collapse_probability,
    design as design,
    ode_trajectory as ode_trajectory,
)

__version__: str

ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]", None]
ArrayLike = Union[float, int, npt.ArrayLike]

def train(
    config: ConfigSource = ...,
    *,
    run: int = ...,
    user_target: Optional[Target] = ...,
    **overrides: Any,
) -> Dict[str, Dict[str, Any]]: ...
def resolve_config(config: ConfigSource = ..., **overrides: Any) -> str: ...
