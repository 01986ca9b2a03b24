"""The Java check: Spark 4 runs on Java 17 or 21 only, and without this check a wrong or missing
Java surfaces as a JVM stack trace from deep inside pyspark's gateway start-up."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

from reco_sidecar.common.errors import FailedPrecondition

SUPPORTED = (17, 21)
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_binary() -> str | None:
    """The `java` pyspark will start: $JAVA_HOME/bin/java if JAVA_HOME is set, else the PATH's."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = pathlib.Path(home) / "bin" / "java"
        return str(candidate) if candidate.exists() else None
    return shutil.which("java")


def major_version(version_output: str) -> int | None:
    """17 from 'openjdk version "17.0.15" 2025-04-15'; 8 from the old '"1.8.0_392"' form."""
    m = _VERSION.search(version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check() -> int:
    """The Java major version, or FailedPrecondition saying what to install."""
    java = java_binary()
    if java is None:
        raise FailedPrecondition("Spark needs Java 17 or 21 and no `java` was found "
                                 "(install a JDK, or set JAVA_HOME)", field="engine")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FailedPrecondition(f"cannot run {java} -version: {e}", field="engine") from None
    major = major_version(out.stderr + out.stdout)
    if major not in SUPPORTED:
        found = f"Java {major}" if major is not None else "an unrecognised Java"
        raise FailedPrecondition(f"Spark needs Java 17 or 21; {java} is {found}", field="engine")
    return major
