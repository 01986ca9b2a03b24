"""The compiled parts: the exact score kernel (reco_sidecar/engine/_exactdot.c), MMR's
per-position loop (reco_sidecar/ranking/_mmr.c) and the user solve of fold-in and online
learning (reco_sidecar/engine/_foldin.c). Everything else is in pyproject.toml. The
extensions are optional: where no C compiler is found the install goes on and numpy forms
run (engine/exactdot.py, ranking/mmr.py, engine/foldin.py)."""

from setuptools import Extension, setup

# No fused multiply-adds: every value must round as numpy's separate steps do.
FLAGS = ["-O2", "-ffp-contract=off", "-std=c11"]

# The solve's inner loops are row updates, element by element: -O3 vectorises them, which
# reorders no sum, so it rounds as -O2 does (with its AVX2 clone, _foldin.c, about 2 x
# faster than numpy's form for a learner's group; -O2 left it slower than numpy).
VECTORISED = ["-O3", "-ffp-contract=off", "-std=c11"]

# All read their arrays through this one header.
HEADERS = ["reco_sidecar/common/pybuffer.h"]

setup(
    ext_modules=[
        Extension("reco_sidecar.engine._exactdot", ["reco_sidecar/engine/_exactdot.c"], depends=HEADERS,
                  extra_compile_args=FLAGS, optional=True),
        Extension("reco_sidecar.ranking._mmr", ["reco_sidecar/ranking/_mmr.c"], depends=HEADERS,
                  extra_compile_args=FLAGS, optional=True),
        Extension("reco_sidecar.engine._foldin", ["reco_sidecar/engine/_foldin.c"], depends=HEADERS,
                  extra_compile_args=VECTORISED, libraries=["m"], optional=True),
    ]
)
