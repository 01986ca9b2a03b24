"""The one compiled part: MMR's per-position loop (reco_sidecar/ranking/_mmr.c). Everything
else is in pyproject.toml. The extension is optional: where no C compiler is found the
install goes on and the ranking stage runs the same loop in numpy (ranking/mmr.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "reco_sidecar.ranking._mmr",
            ["reco_sidecar/ranking/_mmr.c"],
            # No fused multiply-adds: every value must round as numpy's separate steps do.
            extra_compile_args=["-O2", "-ffp-contract=off", "-std=c11"],
            optional=True,
        )
    ]
)
