"""Server settings: one dataclass, filled from ``facegan serve`` options or ``FACEGAN_SERVE_*`` env vars."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ..errors import ConfigError

ENV_PREFIX = "FACEGAN_SERVE_"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_bytes: int = 20 * 1024 * 1024  # one photo; larger uploads get 413 before decoding
    max_pixels: int = 40_000_000  # decoded size limit (checked from the header), 413 beyond
    concurrency: int = 1  # operations running at once (CPU-bound: one per free core)
    queue_size: int = 8  # requests allowed to wait for a slot; beyond that 503 "busy" at once
    timeout_s: float = 120.0  # per request, waiting included; 504 beyond
    rate_limit: float = 60.0  # requests per minute per client on /api/run (0 = off); 429 beyond
    rate_burst: int = 10  # requests a client may make at once before the per-minute rate applies
    page: bool = True  # mount the web page (Gradio) at /
    result_ttl_s: float = 900.0  # how long the web page keeps a result (in memory) for download
    result_store_bytes: int = 256 * 1024 * 1024  # memory cap of those kept results

    def __post_init__(self):
        if self.max_upload_bytes <= 0 or self.max_pixels <= 0:
            raise ConfigError("max_upload_bytes and max_pixels must be positive")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        if self.queue_size < 0:
            raise ConfigError("queue_size must be >= 0")
        if self.timeout_s <= 0:
            raise ConfigError("timeout_s must be positive")
        if self.rate_limit < 0 or self.rate_burst < 1:
            raise ConfigError("rate_limit must be >= 0 and rate_burst >= 1")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "ServerConfig":
        """Defaults, then ``FACEGAN_SERVE_<FIELD>`` env vars, then explicit (non-None) overrides."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            typ = type(f.default)
            try:
                if typ is bool:
                    values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif typ is int:
                    values[f.name] = int(float(raw))
                else:
                    values[f.name] = typ(raw)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected {typ.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
