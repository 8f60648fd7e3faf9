"""Type stubs of annealvi's user-defined targets."""

from typing import Any, Callable, Optional, Tuple

import numpy as np

class Target:
    fn: Callable[[np.ndarray], Tuple[Any, Any]]
    dim: int
    modes: Optional[np.ndarray]
    def __init__(
        self, fn: Callable[[np.ndarray], Tuple[Any, Any]], dim: int, modes: Optional[Any] = ...
    ) -> None: ...
    @classmethod
    def from_callable(
        cls, fn: Callable[[np.ndarray], Tuple[Any, Any]], dim: int, modes: Optional[Any] = ...
    ) -> "Target": ...
    def __call__(self, x: Any) -> Tuple[np.ndarray, np.ndarray]: ...

def bimodal(d: int, r: float = ..., w_star: float = ...) -> Target: ...
