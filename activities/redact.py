"""Masks secrets in text that leaves an activity: step output, error messages.

Two sources: the values of secret-looking variables in the worker's environment (whatever their
shape), and well-known key formats."""

from __future__ import annotations

import os
import re

MASK = "[REDACTED]"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|PRIVATE)", re.IGNORECASE)
KEY_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"sk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"xox[abpr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
]
MIN_SECRET_LEN = 6


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)  # longest first, so no secret is half-masked


def redact(text: str, env: dict[str, str] | None = None) -> str:
    for value in secret_values(env):
        text = text.replace(value, MASK)
    for pattern in KEY_PATTERNS:
        text = pattern.sub(MASK, text)
    return text
