"""A real S3-compatible server for tests and benchmarks: SeaweedFS's `weed server -s3` on loopback.

scripts/seaweedfs.sh builds the binary once into a cache outside the repository;
RECO_WEED names another binary. The server runs in its own session, so stopping it kills
its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.paths import ROOT
from harness.procs import wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

START_TIMEOUT = 90.0
ACCESS_KEY = "reco-test-access"
SECRET_KEY = "reco-test-secret-0123456789abcdef"  # a test-only identity of a throwaway server
# weed also listens on each port + 10000 for gRPC, so both must be free.
GRPC_OFFSET = 10000
PORT_RANGE = (20000, 45000)


def weed_binary() -> str | None:
    """The weed binary if it is built (never starts the slow build itself)."""
    explicit = os.environ.get("RECO_WEED")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = subprocess.run([str(ROOT / "scripts" / "seaweedfs.sh"), "--cached-only"],
                           capture_output=True, text=True, check=False)
    path = found.stdout.strip()
    return path if found.returncode == 0 and path else None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` ports p, each with p + 10000 also free (weed's gRPC companion port)."""
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        p = rng.randrange(*PORT_RANGE)
        taken = {q for c in chosen for q in (c, c + GRPC_OFFSET)}
        if p in taken or p + GRPC_OFFSET in taken:
            continue
        if _free(p) and _free(p + GRPC_OFFSET):
            chosen.append(p)
    return chosen


@dataclass
class S3Server:
    binary: str
    data_dir: pathlib.Path
    ports: dict[str, int]
    proc: subprocess.Popen[bytes] | None = None
    log_path: pathlib.Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a sidecar or a publisher reads to reach this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "RECO_S3_ENDPOINT_URL": self.endpoint}

    def client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30))

    def start(self) -> None:
        """Starts weed and returns once a bucket can be created and an object written."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "reco-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.log_path = self.data_dir / "weed.log"
        args = [
            self.binary, "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}",
            f"-master.port={self.ports['master']}", f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}", f"-s3.port={self.ports['s3']}",
            f"-s3.config={config}",
            # Off: services with fixed default ports (two servers would collide) and telemetry.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}", f"-s3.localSocket={self.data_dir / 's3.sock'}",
            # Each bucket is a collection that grows 7 volumes at its first write: small volumes,
            # as many as the disk allows (0: automatic), so dozens of test buckets fit.
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
        ]
        (self.data_dir / "data").mkdir(exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self._wait_writable()

    def _wait_writable(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        last: list[Exception] = []

        def writable() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou,
                                         client.exceptions.BucketAlreadyExists):
                    client.create_bucket(Bucket="reco-probe")
                client.put_object(Bucket="reco-probe", Key="probe", Body=b"ok")
                return bool(client.get_object(Bucket="reco-probe", Key="probe")["Body"].read() == b"ok")
            except (BotoCoreError, ClientError) as e:
                last[:] = [e]
                return False

        try:
            wait_until(writable, START_TIMEOUT, "weed writable", interval=0.25)
        except TimeoutError:
            raise TimeoutError(f"weed not writable after {START_TIMEOUT} s ({last}): {self.log_tail()}") from None

    def stop(self) -> None:
        """Kills the server's whole process group at once (SIGKILL: also the mid-download fault)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def running_s3(binary: str, data_dir: pathlib.Path) -> Iterator[S3Server]:
    s3, master, volume, filer = free_ports(4)
    server = S3Server(binary, data_dir, {"s3": s3, "master": master, "volume": volume, "filer": filer})
    try:
        server.start()
        yield server
    finally:
        server.stop()
