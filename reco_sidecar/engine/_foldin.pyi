# The compiled user solve (_foldin.c); see foldin.py.
import numpy as np

def solve(item_factors: np.ndarray, yty: np.ndarray, rows: np.ndarray, gram: np.ndarray, rhs: np.ndarray,
          lengths: np.ndarray, regularization: np.ndarray, out: np.ndarray, failed: np.ndarray, /) -> None: ...
