"""Type stubs of the native module (internal; use the functions of annealvi)."""

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

INT_RANGES: Dict[str, Tuple[int, int]]

def resolve_config(kind: str, source: Any, overrides: Dict[str, Any]) -> str: ...
def resolve_sweep(kind: str, source: Any, overrides: Dict[str, Any]) -> str: ...
def check_schedule(kind: str, beta_i: float, t0: float, beta: float) -> None: ...
def schedule_beta(kind: str, beta_i: float, t0: float, beta: float, steps: np.ndarray) -> np.ndarray: ...
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
) -> Dict[str, Any]: ...
def sweep(
    kind: str, source: Any, overrides: Dict[str, Any], out: str, resume: bool, shard: Optional[str],
    threads: int, target: Any,
) -> Dict[str, Any]: ...
def run_sweep(
    kind: str, source: Any, overrides: Dict[str, Any], grid: Optional[Dict[str, Any]], out: str,
    resume: bool, shard: Optional[str], threads: int, target: Any,
    progress: Optional[Callable[[int, int], Any]],
) -> Dict[str, Any]: ...
def gmm_gradient_check(
    target: Any, r: float, w_star: float, beta: float, estimator: str, samples: int, seed: int,
) -> Tuple[float, np.ndarray, float, np.ndarray]: ...
