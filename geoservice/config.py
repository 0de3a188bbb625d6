"""Service configuration: ``config.yml`` validated by pydantic, with ``${ENV}`` substitution.

Nothing here runs at import time; ``load_settings(path)`` is called by the CLI and tests,
and the result is handed to ``create_app(settings)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from geoservice.reinfolib.settings import ReinfolibSettings

#: A configured property value (feeds' constants and value maps).
Scalar = str | int | float | bool | None

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ServerSettings(BaseModel):
    """Where the service listens and how it names itself."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    url: str | None = Field(None, description="Public base URL; default http://host:port")
    title: str = "Tokyo GeoTwin"
    description: str = "東京のデジタルツイン地図サービス / Tokyo geospatial digital twin"
    languages: list[str] = Field(default_factory=lambda: ["ja", "en"])
    limit_default: int = Field(10, ge=1)
    limit_max: int = Field(10000, ge=1)
    tile_cache_mb: int = Field(
        64, ge=0, description="Per-process cache of public vector tiles (0: off)"
    )
    trust_forwarded: bool = Field(
        False,
        description="Without url: links follow a reverse proxy's Forwarded / X-Forwarded-*"
        " headers (enable only behind a proxy that sets them)",
    )

    @property
    def base_url(self) -> str:
        """The public URL of the service root, without a trailing slash.

        Without ``url``: the address served (a wildcard bind names loopback; set ``url``,
        or ``trust_forwarded`` behind a proxy, for links other machines can follow).
        """
        if self.url:
            return self.url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


class StoreSettings(BaseModel):
    """Which backend holds the features."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["gpkg", "postgis"] = "gpkg"
    path: Path = Path("data/build/geotwin.gpkg")
    database_url: str | None = None
    read_database_url: str | None = Field(
        None,
        description="A PostgreSQL read replica (streaming standby) for the public read paths"
        " (items, one item, tiles, collections); writes and everything else use database_url",
    )


class Contact(BaseModel):
    """Who runs the service (shown on the landing page)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "Tokyo GeoTwin"
    email: str = "geotwin@example.invalid"
    url: str = "https://example.invalid/geotwin"


class WebPushSettings(BaseModel):
    """Web Push (RFC 8030) with VAPID (RFC 8292): the server's key pair and the JWT subject.

    The private key never sits in ``config.yml``: name the environment variable that holds
    it (base64url of the raw 32-byte P-256 scalar, or of its DER) or a file (PEM or that
    text).  ``geoservice vapid-keys`` makes a pair.  Push is offered on the map page only
    when a private key is found.
    """

    model_config = ConfigDict(extra="forbid")
    vapid_public_key: str | None = Field(
        None, description="base64url uncompressed P-256 point; derived from the private key "
        "when unset (a mismatch is refused at start-up)"
    )
    private_key_env: str = Field(
        "GEOSERVICE_VAPID_PRIVATE_KEY", description="NAME of the env var holding the key"
    )
    private_key_file: Path | None = Field(None, description="Or a file holding the key")
    subject: str = Field(
        "mailto:geotwin@example.org", pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$",
        description="VAPID 'sub' claim: a mailto: or https: contact for the push services",
    )
    ttl_s: int = Field(86_400, ge=0, le=2_419_200, description="How long a push service "
                       "keeps an undelivered message (TTL header)")
    urgency: Literal["very-low", "low", "normal", "high"] = "high"
    allow_insecure_endpoints: bool = Field(
        False, description="Accept http:// push endpoints on loopback (tests only)"
    )


class SmtpSettings(BaseModel):
    """The SMTP relay e-mail alerts are sent through (credentials come from the environment:
    the file names the variables, never holds the secret)."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(description="SMTP server host name")
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="Upgrade with STARTTLS before authenticating")
    sender: str = Field(description="From: address of alert mails, e.g. alerts@example.jp")
    username_env: str | None = Field(None, description="Env var holding the SMTP user name")
    password_env: str | None = Field(None, description="Env var holding the SMTP password")
    timeout_s: float = Field(10.0, gt=0, description="Per SMTP conversation")
    ca_file: Path | None = Field(
        None, description="PEM CA certificates to trust for STARTTLS (a relay with a private "
        "CA); default: the system's"
    )


class EmailAlertSettings(BaseModel):
    """E-mail alert subscriptions: double opt-in, tokens, rate limits, digest time."""

    model_config = ConfigDict(extra="forbid")
    key_env: str = Field(
        "GEOSERVICE_EMAIL_KEY",
        description="Env var holding the secret that signs links and encrypts addresses; "
        "unset: a random key kept in the alerts database",
    )
    confirm_ttl_h: float = Field(48.0, gt=0, description="Confirmation link lifetime")
    confirm_per_address: int = Field(3, ge=1, description="Confirmation mails per address/day")
    subscribe_per_client: int = Field(10, ge=1, description="Subscribe requests per IP/hour")
    digest_hour_jst: int = Field(18, ge=0, le=23, description="When daily digests go out")
    safety_url: str = Field(
        "https://www.kankyo.metro.tokyo.lg.jp/nature/animals_plants/bear/index.html",
        description="The prefecture's bear safety advice page, linked from every mail",
    )


class AlertSettings(BaseModel):
    """Alert subscriptions, webhook delivery and the sighting event stream."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    db: Path | None = Field(None, description="Outbox database; default <work_dir>/alerts.sqlite")
    max_attempts: int = Field(8, ge=1, le=50)
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles each time")
    retry_max_s: float = Field(3600.0, gt=0)
    timeout_s: float = Field(5.0, gt=0, description="Per webhook request")
    lease_s: float = Field(60.0, gt=0, description="How long a claimed delivery stays claimed")
    poll_s: float = Field(0.5, gt=0, description="Outbox poll interval (other processes' events)")
    concurrency: int = Field(16, ge=1)
    heartbeat_s: float = Field(15.0, gt=0, description="SSE comment heartbeat interval")
    retention_days: float = Field(
        30.0, gt=0, description="Events and finished deliveries older than this are pruned"
    )
    radius_min_m: float = Field(10.0, gt=0)
    radius_max_m: float = Field(50_000.0, gt=0)
    allow_private_webhooks: bool = Field(
        False, description="Accept loopback/private webhook hosts (tests, intranet deployments)"
    )
    webpush: WebPushSettings = Field(default_factory=WebPushSettings)
    smtp: SmtpSettings | None = Field(None, description="SMTP relay; unset: no e-mail alerts")
    email: EmailAlertSettings = Field(default_factory=lambda: EmailAlertSettings())

    @model_validator(mode="after")
    def _lease_outlives_request(self) -> AlertSettings:
        if self.lease_s <= self.timeout_s:
            raise ValueError("alerts.lease_s must be longer than alerts.timeout_s")
        if self.radius_min_m > self.radius_max_m:
            raise ValueError("alerts.radius_min_m must not exceed alerts.radius_max_m")
        return self


class Attribution(BaseModel):
    """A credit line a tile provider requires: the text, linked to its terms page."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    url: str | None = None


_GSI = "https://cyberjapandata.gsi.go.jp/xyz"
_GSI_CREDIT = {"text": "地理院タイル", "url": "https://maps.gsi.go.jp/development/ichiran.html"}


class BasemapSource(BaseModel):
    """One tile source the pages draw under their data (the browser fetches it, never us).

    ``kind``: ``raster`` (image tiles) or ``dem`` (地理院 標高タイル PNG encoding, for 3D
    terrain). ``url`` is an XYZ template with ``{z}``, ``{x}`` and ``{y}``.
    """

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    title_en: str
    kind: Literal["raster", "dem"] = "raster"
    url: str
    attribution: Attribution
    min_zoom: int = Field(0, ge=0, le=24)
    max_zoom: int = Field(18, ge=0, le=24)
    tile_size: int = Field(256, ge=64, le=1024)

    @model_validator(mode="after")
    def _template(self) -> BasemapSource:
        missing = [k for k in ("{z}", "{x}", "{y}") if k not in self.url]
        if missing:
            raise ValueError(f"basemap {self.id!r}: url must contain {{z}}, {{x}} and {{y}}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"basemap {self.id!r}: url must be http(s)")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"basemap {self.id!r}: min_zoom must not exceed max_zoom")
        return self


def _gsi(
    lid: str, title: str, title_en: str, zooms: tuple[int, int], kind: str = "raster",
    ext: str = "png",
) -> BasemapSource:
    return BasemapSource.model_validate(
        {"id": lid, "title": title, "title_en": title_en, "kind": kind, "min_zoom": zooms[0],
         "max_zoom": zooms[1], "url": f"{_GSI}/{lid}/{{z}}/{{x}}/{{y}}.{ext}",
         "attribution": _GSI_CREDIT}
    )


def _gsi_sources() -> list[BasemapSource]:
    return [
        _gsi("pale", "淡色地図", "Pale map", (5, 18)),
        _gsi("std", "標準地図", "Standard map", (5, 18)),
        _gsi("seamlessphoto", "シームレス空中写真", "Aerial photos", (2, 18), ext="jpg"),
        _gsi("dem_png", "標高タイル", "Elevation tiles", (1, 14), kind="dem"),
    ]


class BasemapSettings(BaseModel):
    """Background maps of the pages: 地理院タイル by default (online; the browser fetches).

    ``map_2d`` lists the sources the MapLibre pages offer (the first is shown first),
    ``imagery_3d`` those of the 3D viewer; ``terrain`` names a ``dem`` source for the 3D
    viewer's ground, or is null for the flat ground at the local geoid height.
    """

    model_config = ConfigDict(extra="forbid")
    sources: list[BasemapSource] = Field(default_factory=_gsi_sources)
    map_2d: list[str] = Field(default_factory=lambda: ["pale", "std"])
    imagery_3d: list[str] = Field(default_factory=lambda: ["seamlessphoto", "pale"])
    terrain: str | None = "dem_png"
    bounds_3d: tuple[float, float, float, float] = Field(
        (138.9, 35.4, 140.0, 35.95),
        description="lon/lat box the 3D viewer draws imagery and terrain in (Tokyo)",
    )

    @model_validator(mode="after")
    def _references(self) -> BasemapSettings:
        kinds = {s.id: s.kind for s in self.sources}
        if len(kinds) != len(self.sources):
            raise ValueError("basemaps.sources: ids must be unique")
        for key in ("map_2d", "imagery_3d"):
            bad = [i for i in getattr(self, key) if kinds.get(i) != "raster"]
            if bad:
                raise ValueError(f"basemaps.{key}: {bad} are not raster sources in sources")
        if self.terrain is not None and kinds.get(self.terrain) != "dem":
            raise ValueError(f"basemaps.terrain: {self.terrain!r} is not a dem source (or null)")
        return self

    def source(self, sid: str) -> BasemapSource:
        """The source with id ``sid`` (ids are checked at load time)."""
        return next(s for s in self.sources if s.id == sid)

    def tile_origins(self) -> list[str]:
        """Origins (``scheme://host[:port]``) the pages fetch tiles from, e.g. for a CSP."""
        from urllib.parse import urlsplit

        used = {*self.map_2d, *self.imagery_3d, *([self.terrain] if self.terrain else [])}
        urls = [urlsplit(s.url) for s in self.sources if s.id in used]
        return sorted({f"{u.scheme}://{u.netloc}" for u in urls})


class FeedSettings(BaseModel):
    """A neighbour's OGC API Features collection that ``geoservice harvest`` pulls from."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    url: str = Field(description="OGC API landing page, e.g. https://example.jp/ogc")
    collection: str
    target: str = "wildlife-sightings"
    mapping: dict[str, str] = Field(
        default_factory=dict, description="local property -> remote property"
    )
    value_maps: dict[str, dict[str, Scalar]] = Field(
        default_factory=dict, description="local property -> {remote value: local value}"
    )
    constants: dict[str, Scalar] = Field(default_factory=dict)
    id_field: str | None = Field(None, description="Remote id property; default feature id")
    lon_field: str | None = None
    lat_field: str | None = None
    updated_field: str | None = Field(
        None, description="Remote temporal property that grows on change (enables datetime=)"
    )
    page_size: int = Field(100, ge=1, le=10000)
    timezone: str = Field(
        "Asia/Tokyo", description="Zone of remote date-times given without an offset"
    )
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (use an IANA name)") from None
        return zone


class BodyLimits(BaseModel):
    """Limits on every request body (``geoservice.edge.bodies``): 413 or 400 past them."""

    model_config = ConfigDict(extra="forbid")
    json_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="JSON bodies (and untyped)")
    upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Other bodies (CSV)")
    depth: int = Field(32, ge=4, le=500, description="Nesting of arrays and objects")
    items: int = Field(500_000, ge=100, description="Array elements and object members")
    string_chars: int = Field(4 * 1024 * 1024, ge=100)
    vertices: int = Field(100_000, ge=10, description="GeoJSON positions in one body")
    rings: int = Field(10_000, ge=1, description="Polygon rings in one body")


class CorsSettings(BaseModel):
    """Cross-origin browser access (``geoservice.edge.cors``): public reads from any origin;
    writes, admin routes and requests with a token only from ``write_origins``."""

    model_config = ConfigDict(extra="forbid")
    write_origins: list[str] = Field(
        default_factory=list, description="e.g. https://gis.pref.example.jp (scheme://host[:port])"
    )
    max_age_s: int = Field(600, ge=0, le=86400, description="How long browsers keep a preflight")

    @field_validator("write_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        pattern = re.compile(r"^https?://[^/\s?#*]+$")
        bad = [o for o in origins if not pattern.match(o.rstrip("/"))]
        if bad:
            raise ValueError(f"not origins (scheme://host[:port], no path or wildcard): {bad}")
        return [o.rstrip("/") for o in origins]


class AuthSettings(BaseModel):
    """Write-side tokens (``geoservice tokens``)."""

    model_config = ConfigDict(extra="forbid")
    pepper: str | None = Field(
        None, description="HMAC pepper of token hashes; default $GEOSERVICE_TOKEN_PEPPER"
    )


class TransactionSettings(BaseModel):
    """OGC API Features Part 4 writes."""

    model_config = ConfigDict(extra="forbid")
    max_body: int = Field(256 * 1024, ge=1, description="Largest accepted feature body (bytes)")


class OfficialLayerSettings(BaseModel):
    """An official API layer that takes precedence over a rule layer (guide.yml explains)."""

    model_config = ConfigDict(extra="forbid")
    layer: str
    where_absent: dict[str, Scalar] = Field(
        default_factory=dict, description="Properties of a site where the API has no feature"
    )
    compare: list[str] = Field(
        default_factory=list, description="Properties compared with the local official file"
    )

    @model_validator(mode="before")
    @classmethod
    def _layer_alone(cls, data: object) -> object:
        """``role: layer-id`` is short for ``role: {layer: layer-id}``."""
        return {"layer": data} if isinstance(data, str) else data


class RealEstateSettings(BaseModel):
    """The guide's real-estate panel (land prices, transactions) from the API."""

    model_config = ConfigDict(extra="forbid")
    land_prices: str
    transactions: str
    nearest: int = Field(3, ge=1, description="Land-price points listed")
    radius_m: float = Field(1000, gt=0, description="Search radius for both")


class GuideSettings(BaseModel):
    """The procedure guide; an unset key keeps the value of the packaged ``guide.yml``."""

    model_config = ConfigDict(extra="forbid")
    parcel_layers: list[str] | None = Field(
        None, description="Layers searched for 地番, in order (first holding a match wins)"
    )
    jobs_db: str | None = Field(None, description="Async jobs' SQLite file under work_dir")
    job_lease_s: float | None = Field(
        None, gt=0, description="Seconds a running job stays claimed without a heartbeat"
    )
    pause_jobs: bool | None = Field(None, description="Accept async jobs but do not run them")
    official_layers: dict[str, OfficialLayerSettings] | None = Field(
        None, description="Rule layer role -> the official API layer that takes precedence"
    )
    real_estate: RealEstateSettings | None = None
    shown_layers: list[str] | None = Field(
        None, description="Layers shown as site facts only (read besides the rules' layers)"
    )


class SightingsSettings(BaseModel):
    """Citizen reports of wildlife sightings and their sensitive locations."""

    model_config = ConfigDict(extra="forbid")
    reports_per_minute: int = Field(5, ge=1, description="Per client address")
    max_report_body: int = Field(4 * 1024 * 1024, ge=1, description="bytes")
    max_photo: int = Field(2 * 1024 * 1024, ge=1, description="bytes")
    sensitive_species: dict[str, int] = Field(
        default_factory=dict, description="Grid cell (m) per species, over sensitive.yml"
    )
    sensitive_cell: int | None = Field(
        None, ge=1, description="Cell (m) of records flagged sensitive; default sensitive.yml"
    )


class Settings(BaseModel):
    """The whole service configuration."""

    model_config = ConfigDict(extra="forbid")
    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    layers_dir: Path = Path("layers")
    enabled_layers: list[str] | None = None
    data_dir: Path = Path("data")
    demo_dir: Path = Path("data/demo")
    work_dir: Path = Path("data/build")
    tiles_dir: Path = Path("tiles")
    contact: Contact = Field(default_factory=lambda: Contact())
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings())
    feeds: list[FeedSettings] = Field(default_factory=list)
    limits: BodyLimits = Field(default_factory=lambda: BodyLimits())
    cors: CorsSettings = Field(default_factory=lambda: CorsSettings())
    reinfolib: ReinfolibSettings = Field(default_factory=lambda: ReinfolibSettings())
    auth: AuthSettings = Field(default_factory=lambda: AuthSettings())
    transactions: TransactionSettings = Field(default_factory=lambda: TransactionSettings())
    guide: GuideSettings = Field(default_factory=lambda: GuideSettings())
    sightings: SightingsSettings = Field(default_factory=lambda: SightingsSettings())
    basemaps: BasemapSettings = Field(default_factory=lambda: BasemapSettings())

    @field_validator("feeds")
    @classmethod
    def _unique_feed_ids(cls, feeds: list[FeedSettings]) -> list[FeedSettings]:
        ids = [f.id for f in feeds]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"feed ids must be unique; repeated: {dup}")
        return feeds

    def listening_on(self, address: str) -> Settings:
        """A copy whose ``server.host``/``port`` are ``host:port`` actually served.

        Links fall back to them when ``server.url`` is unset, so ``serve --port 18765``
        writes links to port 18765, not to the config's port.
        """
        host, _, port = address.rpartition(":")
        server = self.server.model_copy(update={"host": host.strip("[]"), "port": int(port)})
        return self.model_copy(update={"server": server})

    def resolved(self, root: Path) -> Settings:
        """Return a copy whose relative paths are anchored at ``root``."""
        upd: dict[str, object] = {
            k: (root / getattr(self, k)).resolve()
            for k in ("layers_dir", "data_dir", "demo_dir", "work_dir", "tiles_dir")
        }
        store = self.store.model_copy(update={"path": (root / self.store.path).resolve()})
        alerts = self.alerts
        if alerts.db is not None:
            alerts = alerts.model_copy(update={"db": (root / alerts.db).resolve()})
        key_file = alerts.webpush.private_key_file
        if key_file is not None:
            webpush = alerts.webpush.model_copy(
                update={"private_key_file": (root / key_file).resolve()}
            )
            alerts = alerts.model_copy(update={"webpush": webpush})
        if alerts.smtp is not None and alerts.smtp.ca_file is not None:
            ca_file = (root / alerts.smtp.ca_file).resolve()
            smtp = alerts.smtp.model_copy(update={"ca_file": ca_file})
            alerts = alerts.model_copy(update={"smtp": smtp})
        if alerts is not self.alerts:
            upd["alerts"] = alerts
        return self.model_copy(update={**upd, "store": store})


def substitute_env(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; an unset variable without default fails.

    >>> substitute_env("port: ${P:-8000}", {})
    'port: 8000'
    """
    env = dict(os.environ) if env is None else env

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ValueError(f"config refers to ${{{name}}} but it is not set (no default given)")

    return _ENV.sub(repl, text)


class ConfigError(ValueError):
    """``config.yml`` does not validate; the message names each bad key and what is accepted."""


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def accepted_keys(path: Sequence[int | str], model: type[BaseModel] | None = None) -> list[str]:
    """The keys the section at ``path`` accepts (``("feeds", 0)`` -> a feed's keys)."""
    current: type[BaseModel] | None = model or Settings
    for part in path:
        if current is None:
            return []
        if isinstance(part, int):
            continue  # an item of a list section
        field = current.model_fields.get(part)
        current = None if field is None else _model_in(field.annotation)
    return [] if current is None else sorted(current.model_fields)


def explain(exc: ValidationError) -> str:
    """One line per error: where, what, and for an unknown key the accepted ones."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(x) for x in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            accepted = ", ".join(accepted_keys(loc[:-1]))
            lines.append(f"{where}: unknown key {loc[-1]!r}; accepted keys: {accepted}")
        else:
            lines.append(f"{where}: {err['msg']}")
    return "\n".join(lines)


def load_settings(path: Path, env: dict[str, str] | None = None) -> Settings:
    """Read ``config.yml``, substitute environment variables, validate, resolve paths.

    An unknown key anywhere (a typo) is an error naming the key and the accepted ones,
    not a silently ignored setting."""
    raw = yaml.safe_load(substitute_env(path.read_text(encoding="utf-8"), env)) or {}
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(explain(exc)) from None
    return settings.resolved(path.parent.resolve())
