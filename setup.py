"""The compiled parts: the exact score kernel (reco_sidecar/engine/_exactdot.c) and MMR's
per-position loop (reco_sidecar/ranking/_mmr.c). Everything else is in pyproject.toml. Both
extensions are optional: where no C compiler is found the install goes on and the same
arithmetic runs in numpy (engine/exactdot.py, ranking/mmr.py)."""

from setuptools import Extension, setup

# No fused multiply-adds: every value must round as numpy's separate steps do.
FLAGS = ["-O2", "-ffp-contract=off", "-std=c11"]

# Both read their arrays through this one header.
HEADERS = ["reco_sidecar/common/pybuffer.h"]

setup(
    ext_modules=[
        Extension("reco_sidecar.engine._exactdot", ["reco_sidecar/engine/_exactdot.c"], depends=HEADERS,
                  extra_compile_args=FLAGS, optional=True),
        Extension("reco_sidecar.ranking._mmr", ["reco_sidecar/ranking/_mmr.c"], depends=HEADERS,
                  extra_compile_args=FLAGS, optional=True),
    ]
)
