"""The S3 test server itself: what the store tests rely on (bytes round-trip, listing by
prefix, credentials enforced) holds on the real SeaweedFS."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from harness.seaweedfs import S3Server


def test_objects_round_trip_and_list_by_prefix(s3_server: S3Server) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="smoke")
    payload = bytes(range(256)) * 1000
    client.put_object(Bucket="smoke", Key="m/1/a.bin", Body=payload)
    client.put_object(Bucket="smoke", Key="m/2/a.bin", Body=b"x")
    assert client.get_object(Bucket="smoke", Key="m/1/a.bin")["Body"].read() == payload
    listed = client.list_objects_v2(Bucket="smoke", Prefix="m/", Delimiter="/")
    assert sorted(p["Prefix"] for p in listed["CommonPrefixes"]) == ["m/1/", "m/2/"]


def test_wrong_credentials_are_refused(s3_server: S3Server) -> None:
    import boto3

    intruder = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="nobody",
                            aws_secret_access_key="wrong-secret-0123456789", region_name="us-east-1")
    with pytest.raises(ClientError) as refused:
        intruder.list_objects_v2(Bucket="reco-probe")
    assert refused.value.response["Error"]["Code"] in {"InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch"}
