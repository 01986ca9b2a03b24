# The compiled MMR loop (_mmr.c); see mmr.py.
import numpy as np

def pick(units: np.ndarray, rows: np.ndarray, adjusted: np.ndarray, codes: np.ndarray | None,
         pin_rows: np.ndarray, pin_codes: np.ndarray, cap_values: int, lam: float, pool_size: int, want: int,
         window: int, cap: int, bound: float, exhausted: bool) -> tuple[list[int], list[bool], bool]: ...
