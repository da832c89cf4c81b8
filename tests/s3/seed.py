"""Seeds the S3-compatible server the object storage tests run against.

    seed.py seed ENDPOINT BUCKET PREFIX DIR   every folder and file under DIR
    seed.py put ENDPOINT BUCKET KEY TEXT      one object (overwrites), with no
                                              checksum (boto3 adds a CRC-32 by default)

Files get a full-object CRC-32 checksum and, like folders (as markers,
`key/`), their mtime as rclone writes it: `mtime` user metadata, seconds
since the epoch with nine decimals.
"""

import os
import sys

import boto3
from botocore.config import Config


def client(endpoint, checksums=True):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(request_checksum_calculation="when_supported" if checksums else "when_required"),
    )


def mtime(path):
    ns = os.stat(path).st_mtime_ns
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def seed(endpoint, bucket, prefix, root):
    s3 = client(endpoint)
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        base = prefix if rel == "." else f"{prefix}/{rel}"
        if rel != ".":
            s3.put_object(Bucket=bucket, Key=base + "/", Body=b"", Metadata={"mtime": mtime(folder)})
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                s3.put_object(
                    Bucket=bucket,
                    Key=f"{base}/{name}",
                    Body=f.read(),
                    ChecksumAlgorithm="CRC32",
                    Metadata={"mtime": mtime(path)},
                )


def main(argv):
    if argv[1] == "seed":
        seed(*argv[2:6])
    elif argv[1] == "put":
        endpoint, bucket, key, text = argv[2:6]
        client(endpoint, checksums=False).put_object(Bucket=bucket, Key=key, Body=text.encode())
    else:
        sys.exit(f"unknown command {argv[1]!r}")


if __name__ == "__main__":
    main(sys.argv)
