"""Log lines stay whole when threads and processes log at once (a JSON reader must parse each)."""

from __future__ import annotations

import json
import os
import sys
import textwrap

from harness.procs import run_bounded

CHILD = textwrap.dedent("""
    import os, sys, threading
    from reco_sidecar.common import logs
    logs.configure("info")
    log = logs.get("t")
    # Forked while threads log, as the supervisor's workers are: the child's lock must be free.
    def spam(tag):
        for i in range(400):
            log.info("line", tag=tag, i=i, pad="x" * 120)
    threads = [threading.Thread(target=spam, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    pid = os.fork()
    if pid == 0:
        spam("child")
        os._exit(0)
    spam("main")
    for t in threads:
        t.join()
    os.waitpid(pid, 0)
""")


def test_concurrent_threads_and_a_forked_child_never_merge_lines() -> None:
    # Its own process group, killed at the bound: a child hung on a copied lock must not outlive the test.
    code, _, err, _ = run_bounded([sys.executable, "-c", CHILD], 60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert code == 0, err[-2000:]
    events = [json.loads(line) for line in err.splitlines()]  # raises on a merged or torn line
    by_tag: dict[str, int] = {}
    for e in events:
        by_tag[e["tag"]] = by_tag.get(e["tag"], 0) + 1
    assert by_tag == {"t0": 400, "t1": 400, "t2": 400, "t3": 400, "main": 400, "child": 400}
