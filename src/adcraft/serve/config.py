"""Settings of ``adcraft serve``: which run to serve, where to listen, who may call it and how much it may take."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.serve.policy import ServingPolicyConfig

DATABASE_FILE = "decisions.sqlite"


@dataclass(frozen=True)
class ServeConfig:
    """Everything the HTTP API needs to start; validated on construction.

    - ``run_dir``: an ``adcraft optimize`` output folder; ``market_dir``: the market it was made from.
    - ``token``: the bearer token every route but ``/health`` (and the login form) asks for; None turns
      authentication off, which ``auth.check_startup`` allows only on a loopback address with
      ``insecure_local``.
    - ``database_url``: where the review page keeps decisions and ``/v1/serve`` its served log (default:
      ``decisions.sqlite`` in the run folder).
    - ``max_body_bytes``: largest request body (413 beyond); ``max_image_pixels``: largest uploaded image,
      read from its header before any pixel is decoded (422 beyond).
    - ``max_concurrent``: model or rendering jobs running at once; a request waits at most
      ``queue_timeout_s`` for a slot, then gets 503 with ``Retry-After``. ``request_timeout_s``: a job
      running longer answers 504. ``body_timeout_s``: a request body that has not all arrived this long after
      the server began reading it answers 408 (a client stalling mid-body frees its connection).
    - ``keep_alive_s``: how long an idle connection stays open for the client's next request. Longer than the
      idle expiry of common clients and proxies (httpx and uvicorn's own default are 5 s, AWS load balancers
      60 s), so that the client, not the server, closes an idle connection: when both sides give up at the
      same moment, a request sent on a connection the server is closing fails with a reset
      (``bench/load.py``: one failed request per minute of 50 clients with the server at 5 s).
    - ``ctr_model_dir``: a model that reads image features and learns new elements (``adcraft train ctr``, or
      pairwise) for scoring uploaded images;
      ``contrastive_model_dir``: a contrastive model (``adcraft train contrastive``) for ``/v1/edit``.
    - ``login_ttl_s``: how long a browser login (``/login``) lasts before the token must be given again.
    - ``docs``: serve the Swagger page at ``/docs`` (off by default: it loads Swagger UI's script from a CDN,
      unpinned by any integrity hash); the OpenAPI schema at ``/openapi.json`` is served either way.
    - ``brand_file``: a brand file (``generate.brand``): proposals keep to it, and scoring or proposing a
      combination it refuses answers 422 with the reasons.
    - ``max_k``: most proposals per request; ``score_cache_size`` / ``render_cache_size``: entries kept in the
      in-memory caches of scores and rendered PNGs.
    - ``policy``: how ``/v1/serve`` chooses among a product's creatives (``adcraft.serve.policy``).
    """

    run_dir: Path
    market_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    insecure_local: bool = False
    database_url: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4_000_000
    max_concurrent: int = 4
    queue_timeout_s: float = 2.0
    request_timeout_s: float = 30.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 75.0
    login_ttl_s: float = 8 * 3600.0
    docs: bool = False
    ctr_model_dir: Path | None = None
    contrastive_model_dir: Path | None = None
    max_k: int = 20
    score_cache_size: int = 65_536
    render_cache_size: int = 256
    brand_file: Path | None = None
    policy: ServingPolicyConfig = field(default_factory=ServingPolicyConfig)

    def __post_init__(self) -> None:
        check_config(self)
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "market_dir", Path(self.market_dir))
        if self.database_url is None:
            object.__setattr__(self, "database_url", f"sqlite:///{(self.run_dir / DATABASE_FILE).resolve()}")
        for name in ("ctr_model_dir", "contrastive_model_dir", "brand_file"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not 0 <= self.port <= 65535:
            raise InputError(f"port must lie in [0, 65535], got {self.port}")
        for name in ("max_body_bytes", "max_image_pixels", "max_concurrent", "max_k", "score_cache_size",
                     "render_cache_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("queue_timeout_s", "request_timeout_s", "body_timeout_s", "keep_alive_s", "login_ttl_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.token is not None and not self.token.strip():
            raise InputError("the API token is empty")
