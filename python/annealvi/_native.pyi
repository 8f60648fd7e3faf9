"""Type stubs of the native module (internal; use the functions of annealvi)."""

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

INT_RANGES: Dict[str, Tuple[int, int]]

def resolve_config(kind: str, source: Any, overrides: Dict[str, Any]) -> str: ...
def resolve_sweep(kind: str, source: Any, overrides: Dict[str, Any]) -> str: ...
def schedule_validate(table: Dict[str, Any]) -> None: ...
def schedule_values(table: Dict[str, Any], steps: np.ndarray) -> Tuple[np.ndarray, float]: ...
def collapse_probability(
    beta_i: list, t0: list, schedules: Optional[List[Dict[str, Any]]], d: int, r: float,
    w_star: float, lr: float, init_scale: float, extra_steps: int, method: str, ics: int,
    seed: int, threads: int, progress: Optional[Callable[[int, int], Any]],
) -> Dict[str, np.ndarray]: ...
def design(
    shape: str, max_collapse: Optional[float], budget: Optional[float], segments: int, d: int,
    r: float, w_star: float, lr: float, init_scale: float, extra_steps: int, ics: int,
    seed: int, check_seeds: int, samples: int, t_min: float, t_max: float, threads: int,
    progress: Optional[Callable[[int, int], Any]],
) -> Dict[str, Any]: ...
def ode_trajectory(
    beta_i: float, t0: float, steps: int, every: int, d: int, r: float, w_star: float,
    lr: float, init_scale: float, sigma0: Optional[float], seed: int, run: int,
    quasi_static: bool, progress: Optional[Callable[[int, int], Any]],
) -> Dict[str, np.ndarray]: ...
def train(
    kind: str, source: Any, overrides: Dict[str, Any], run: int, target: Any,
    progress: Any = ...,
) -> Dict[str, Any]: ...
def experiment_config(
    kind: str, source: Any, overrides: Dict[str, Any], target: Any = ...,
) -> Tuple[str, Dict[str, Any]]: ...

class GmmModel:
    dim: int
    components: int
    means: np.ndarray
    sigma: np.ndarray
    weights: np.ndarray
    def __init__(self, means: np.ndarray, sigma: np.ndarray, weights: np.ndarray) -> None: ...
    def sample(self, n: int, seed: int) -> np.ndarray: ...
    def log_prob(self, x: np.ndarray) -> np.ndarray: ...

class FlowModel:
    dim: int
    arch: Dict[str, Any]
    params: np.ndarray
    layout: List[Tuple[int, str, int, int, int, int]]
    def sample_with_log_prob(self, n: int, seed: int) -> Tuple[np.ndarray, np.ndarray]: ...
    def log_prob(self, x: np.ndarray) -> np.ndarray: ...
def run_sweep(
    kind: str, source: Any, overrides: Dict[str, Any], grid: Optional[Dict[str, Any]], out: str,
    resume: bool, shard: Optional[str], threads: int, target: Any,
    progress: Optional[Callable[[int, int], Any]],
) -> Dict[str, Any]: ...
def gmm_gradient_check(
    target: Any, r: float, w_star: float, beta: float, estimator: str, samples: int, seed: int,
) -> Tuple[float, np.ndarray, float, np.ndarray]: ...
