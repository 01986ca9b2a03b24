# The compiled exact score kernel (_exactdot.c); see exactdot.py.
import numpy as np

def scores(vectors: np.ndarray, items: np.ndarray, pair_vector: np.ndarray, pair_item: np.ndarray,
           out: np.ndarray, /) -> None: ...
