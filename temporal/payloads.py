"""Large values travel by reference: Temporal's claim-check pattern in the data converter.

Every payload above ``payloads.threshold_bytes`` (file contents, step outputs, prompts, a model's
answer, a whole request state) is written to a payload store and replaced in Temporal by a small
reference, so nothing comes near Temporal's 2 MB limit on a payload and no activity is retried
forever because its result is too large.

Stores are content-addressed (the key is the SHA-256 of what is stored, checked again when it is
read back):
- ``local`` (default): a directory under the data dir, shared by the CLI and the worker on one
  machine. Its references name the file, so any process on the machine reads them back without
  configuration.
- ``s3``: any S3-compatible service (AWS, MinIO, Ceph...) for clusters, spoken to with httpx and
  AWS Signature Version 4. The bucket, endpoint, prefix and region are settings; the credentials
  are the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``)
  variables of each process, never settings, so never in a workflow's history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from models.config import PayloadSettings, Settings, data_dir

ENCODING = b"iter/claim-check"
S3_TIMEOUT_S = 60.0


class PayloadStoreError(RuntimeError):
    pass


class PayloadStore(Protocol):
    def put(self, key: str, data: bytes) -> dict[str, str]:
        """Store ``data`` under ``key``; returns the reference to keep in Temporal."""
        ...


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checked(key: str, data: bytes) -> bytes:
    if _key(data) != key:
        raise PayloadStoreError(f"the stored payload {key[:12]}... does not match its digest; it was altered")
    return data


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> dict[str, str]:
        path = self.root / key[:2] / key
        if not path.exists():  # content-addressed: the same value is stored once
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return {"store": "local", "path": str(path), "key": key}


def _read_local(ref: dict[str, str]) -> bytes:
    path, key = Path(ref["path"]), ref["key"]
    if path.name != key or len(key) != 64:
        raise PayloadStoreError(f"not a payload reference: {path}")
    try:
        return _checked(key, path.read_bytes())
    except FileNotFoundError:
        raise PayloadStoreError(
            f"payload {key[:12]}... is missing from {path.parent.parent}: was the data dir removed, or does "
            "this process run on another machine than the one that stored it? (use the s3 store for clusters)"
        ) from None


class S3Store:
    """The two calls a claim check needs, PUT and GET of an object, signed with SigV4."""

    def __init__(self, settings: PayloadSettings) -> None:
        if not settings.s3_bucket or not settings.s3_endpoint:
            raise PayloadStoreError("the s3 payload store needs payloads.s3_endpoint and payloads.s3_bucket")
        self.settings = settings

    def put(self, key: str, data: bytes) -> dict[str, str]:
        ref = {
            "store": "s3",
            "endpoint": self.settings.s3_endpoint,
            "bucket": self.settings.s3_bucket,
            "object": f"{self.settings.s3_prefix}{key}",
            "region": self.settings.s3_region,
            "key": key,
        }
        _s3_request("PUT", ref, data)
        return ref


def _s3_request(method: str, ref: dict[str, str], body: bytes = b"") -> bytes:
    url = f"{ref['endpoint'].rstrip('/')}/{ref['bucket']}/{quote(ref['object'])}"
    headers = sigv4_headers(method, url, ref["region"], body)
    try:
        response = httpx.request(method, url, content=body, headers=headers, timeout=S3_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise PayloadStoreError(f"the S3 payload store at {ref['endpoint']} did not answer ({exc})") from None
    if response.status_code >= 300:
        raise PayloadStoreError(
            f"the S3 payload store refused {method} {ref['bucket']}/{ref['object']}: "
            f"HTTP {response.status_code} {response.text[:200]}"
        )
    return response.content


def sigv4_headers(
    method: str, url: str, region: str, body: bytes, now: datetime.datetime | None = None
) -> dict[str, str]:
    """AWS Signature Version 4 for one S3 request, from the standard credential variables."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise PayloadStoreError("the s3 payload store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    parsed = httpx.URL(url)
    moment = now or datetime.datetime.now(datetime.UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    host = parsed.host + (f":{parsed.port}" if parsed.port else "")
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp}
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parsed.raw_path.decode().split("?")[0] or "/",
            "",
            *(f"{k}:{headers[k].strip()}" for k in sorted(headers)),
            "",
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]  # httpx sends it; it was signed as it will be sent
    return headers


def fetch(ref: dict[str, str]) -> bytes:
    """What a reference names, whichever store wrote it."""
    if ref.get("store") == "local":
        return _read_local(ref)
    if ref.get("store") == "s3":
        return _checked(ref["key"], _s3_request("GET", ref))
    raise PayloadStoreError(f"unknown payload store {ref.get('store')!r}")


def store_for(settings: Settings) -> PayloadStore:
    if settings.payloads.store == "s3":
        return S3Store(settings.payloads)
    return LocalStore(data_dir(settings) / "payloads")


class ClaimCheckCodec(PayloadCodec):
    def __init__(self, store: PayloadStore, threshold_bytes: int) -> None:
        self.store = store
        self.threshold = threshold_bytes

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._encode_one(p) for p in payloads]

    async def _encode_one(self, payload: Payload) -> Payload:
        if payload.ByteSize() <= self.threshold:
            return payload
        data = payload.SerializeToString()
        ref = await asyncio.to_thread(self.store.put, _key(data), data)
        return Payload(metadata={"encoding": ENCODING}, data=json.dumps(ref).encode())

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not any(is_reference(p) for p in payloads):
            return list(payloads)
        return await asyncio.to_thread(resolve, payloads)


def is_reference(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def resolve(payloads: Sequence[Payload]) -> list[Payload]:
    """The payloads with every reference replaced by what it names (for code that reads raw
    history events, such as ``iter history``)."""
    return [Payload.FromString(fetch(json.loads(p.data))) if is_reference(p) else p for p in payloads]


def decoded_details(payloads: Sequence[Payload]) -> Any:
    """The first value of an activity's heartbeat details, or None (none, or of a shape this
    version cannot read: nothing to show)."""
    try:
        return pydantic_data_converter.payload_converter.from_payloads(resolve(list(payloads)))[0] if payloads else None
    except Exception:
        return None


def data_converter(settings: Settings) -> DataConverter:
    """iter's converter: pydantic values, large ones by reference."""
    codec = ClaimCheckCodec(store_for(settings), settings.payloads.threshold_bytes)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
