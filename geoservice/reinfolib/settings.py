"""The ``reinfolib`` section of ``config.yml``: where MLIT's 不動産情報ライブラリ API lives and
how politely we use it.

The key itself is never part of the configuration: ``key_env`` names the environment
variable that holds it, so ``config.yml``, generated files and logs never contain it.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_BASE_URL = "https://www.reinfolib.mlit.go.jp/ex-api/external"


class ReinfolibSettings(BaseModel):
    """Client, cache and site-query settings of the 不動産情報ライブラリ API source."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(
        DEFAULT_BASE_URL, description="The API id is appended as the next path segment"
    )
    key_env: str = Field(
        "REINFOLIB_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the subscription key",
    )
    response_format: str = Field("geojson", pattern="^(geojson|pbf)$")
    timeout_s: float = Field(10.0, gt=0, description="Per request (connect, read)")
    retries: int = Field(3, ge=0, le=10, description="Retries on 429, 5xx and timeouts")
    backoff_s: float = Field(0.5, ge=0, description="First back-off; doubles per retry")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait, Retry-After included")
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight per process")
    requests_per_minute: int = Field(
        60, ge=1, description="Request budget of the whole service (every worker and host"
        " counts against it in the store; the operator warns heavy users)"
    )
    cache_ttl_days: float = Field(30.0, gt=0, description="Cached tiles older than this refetch")
    site_budget_s: float = Field(3.0, gt=0, description="Whole guide / hazard-card answer")

    def api_key(self, env: dict[str, str] | None = None) -> SecretStr | None:
        """The key from the ``key_env`` variable, or ``None`` when it is unset or empty."""
        value = (os.environ if env is None else env).get(self.key_env, "").strip()
        return SecretStr(value) if value else None

    @property
    def not_configured(self) -> str:
        """The reason official layers are off (no key), without any secret."""
        return (
            f"not configured: the 不動産情報ライブラリ API key is not set "
            f"(put it in the environment variable {self.key_env})"
        )
