"""Settings, from keyword arguments (CLI flags), the environment, ``.env`` and a settings file.

Conveyor lives inside someone else's program, so reading settings never stops an import:

* ``CONVEYOR_<NAME>`` variables are Conveyor's own and always win over the seeds'
  unprefixed names (``LOG_LEVEL``, ``WORKER_CONCURRENCY``), which other programs may share;
  the order of every source is in `conveyor.settings.sources`.
* Values are read the way people write them (``WARN``, ``console``, ``30s``, ``512MB``:
  `conveyor.settings.values`).
* A value Conveyor still cannot use is skipped with a `ConfigWarning` naming the variable;
  a ``conveyor`` command or a worker refuses to start with it (`Settings.raise_problems`),
  as does ``load_settings(strict=True)``.
* A variable that looks like a typo of a known name gets a "did you mean" warning.

Only ``CONVEYOR_URL`` (or ``--url``, or code) chooses the job store: ``REDIS_URL`` alone is
reported and not used. The cross-setting checks are in `conveyor.settings.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Self, get_args

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from conveyor.errors import ConfigError
from conveyor.redaction import redact_url
from conveyor.settings.checks import (
    LOG_CHANNELS,
    alert_problem,
    error_backoff_problem,
    log_problem,
    mode_problem,
    parse_thresholds,
    retry_backoff_problem,
    url_problem,
    webhook_problem,
)
from conveyor.settings.names import PREFIX
from conveyor.settings.report import ConfigWarning, Origin, Problem, explain, shown_value, warn
from conveyor.settings.sources import Layers, Resolution, resolve
from conveyor.settings.units import parse_duration
from conveyor.settings.values import (
    BackendUrl,
    Bytes,
    Channel,
    ChannelList,
    CommaList,
    Hours,
    Level,
    LogFormat,
    LogLevel,
    Lower,
    LowerOrNone,
    Megabytes,
    Mode,
    PriorityList,
    QueueConnection,
    RetrySteps,
    Seconds,
    WaitThresholds,
    Webhook,
    WorkerMode,
)

DEFAULT_URL = "sqlite:///conveyor.db"
WORKER_MODES: tuple[str, ...] = get_args(WorkerMode)

# Set by load_settings(strict=True): problems are a ConfigError instead of warnings.
_strict: ContextVar[bool] = ContextVar("conveyor_settings_strict", default=False)
# Set by `store_url_given` while a command given --url imports the app.
_given_url: ContextVar[str | None] = ContextVar("conveyor_given_url", default=None)


@contextmanager
def store_url_given(url: str | None) -> Iterator[None]:
    """Within this block, settings read without a store URL of their own take ``url`` as
    if it were given in code: a command run with ``--url`` imports the app inside it, so
    what ``CONVEYOR_URL`` or ``QUEUE_CONNECTION`` would have chosen is neither read nor
    warned about. An app that names its URL in code keeps it. ``None`` changes nothing."""
    if url is None:
        yield
        return
    token = _given_url.set(url)
    try:
        yield
    finally:
        _given_url.reset(token)


class Settings(BaseSettings):
    """Every setting Conveyor reads. Field ``x_y`` is ``CONVEYOR_X_Y``, then ``X_Y``.

    ``Settings(x_y=...)`` sets a value in code; the others are read as `load_settings`
    reads them.
    """

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    _origins: dict[str, Origin] = PrivateAttr(default_factory=dict)
    _problems: tuple[Problem, ...] = PrivateAttr(default=())
    _notices: tuple[str, ...] = PrivateAttr(default=())

    # Only CONVEYOR_URL: REDIS_URL often belongs to a cache (docs/configuration.md). Without
    # it, QUEUE_CONNECTION and its companions may choose (`conveyor.settings.seeds`).
    conveyor_url: BackendUrl = Field(DEFAULT_URL, description="backend URL")
    queue_connection: QueueConnection = Field(
        None,
        description="Laravel's store choice when CONVEYOR_URL is unset: redis, database, "
        "sqs (sync is refused)",
    )
    worker_concurrency: int = Field(10, ge=1, le=10_000, description="jobs run at once")
    worker_queues: CommaList = Field(None, description="queue names or glob patterns")
    worker_priorities: PriorityList = Field(
        None, description="high, normal, low, or numbers (above 0 high, 0 normal, below 0 low)"
    )
    worker_job_types: CommaList = Field(None, description="task names")
    worker_max_jobs: int | None = Field(None, ge=1, description="exit after this many jobs")
    worker_memory_limit: Megabytes | None = Field(
        None, ge=1, description="exit above this RSS (MB)"
    )
    worker_max_time: Seconds | None = Field(None, gt=0, description="exit after seconds")
    worker_sleep: Seconds = Field(1.0, gt=0, le=60, description="longest idle wait (s)")
    worker_timeout: Seconds | None = Field(
        None, gt=0, description="cap on the timeout of every job this worker runs (s)"
    )
    worker_tries: int | None = Field(
        None, ge=1, description="cap on the runs a job gets in this worker (Laravel --tries)"
    )
    worker_queues_ordered: bool = Field(
        False,
        description="take from the first of WORKER_QUEUES that has a ready job, in order "
        "(Laravel --queue=high,low)",
    )
    worker_backoff: RetrySteps = Field(
        None,
        description="retry delay of tasks without their own backoff: seconds, or a list "
        "per attempt (1,5,10); default exponential from WORKER_BACKOFF_BASE",
    )
    worker_backoff_base: Seconds = Field(
        1.0, gt=0, description="first retry delay of the default exponential backoff (s)"
    )
    worker_backoff_max: Seconds = Field(
        3600.0, gt=0, description="longest retry delay of the default backoff (s)"
    )
    worker_error_backoff: Seconds = Field(
        0.1, gt=0, le=60, description="first wait after a failed fetch from the store (s)"
    )
    worker_error_backoff_max: Seconds = Field(
        10.0, gt=0, le=3600, description="longest wait between failed fetches (s)"
    )
    worker_grace_period: Seconds = Field(30.0, ge=0, description="shutdown wait (s)")
    worker_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto",
        description="event loop of conveyor worker: auto (uvloop where it is installed), "
        "asyncio or uvloop; --loop wins",
    )
    worker_loop_warn: Seconds = Field(
        2.0, gt=0, description="log a blocked event loop after this many seconds"
    )
    worker_loop_grace: Seconds = Field(
        10.0,
        ge=0,
        description="exit (code 4) once a loop stays blocked past its job's timeout plus this (s)",
    )
    job_timeout: Seconds = Field(300.0, gt=0, description="default task timeout (s)")
    max_retries: int = Field(3, ge=0, le=1000, description="default retries")
    lease_seconds: Seconds = Field(30.0, ge=0.5, description="lease length (s)")
    max_recoveries: int = Field(3, ge=1, description="lost leases before poison pill")
    reaper_interval: Seconds = Field(5.0, gt=0, description="expired-lease sweep period (s)")
    enable_reaper: bool = Field(True, description="run the lease reaper in workers")
    max_payload_bytes: Bytes = Field(1024 * 1024, ge=1024, description="argument size limit")
    result_ttl: Seconds = Field(86_400.0, ge=0, description="keep succeeded jobs (s)")
    dead_ttl: Seconds = Field(30 * 86_400.0, ge=0, description="keep dead jobs (s)")
    worker_mode: Mode = Field(
        None, description="thin, default, specialized, job-specialized or scheduler-only"
    )
    enable_scheduler: bool | None = Field(
        None, description="run the built-in scheduler in `conveyor worker` (true/false)"
    )
    scheduler_interval: Seconds = Field(
        1.0, ge=0.1, le=60, description="seconds between scheduler ticks, 0.1 to 60"
    )
    worker_metrics_interval: Seconds = Field(
        30.0, ge=0, description="seconds between a worker's metrics lines (0: none)"
    )
    log_format: LogFormat = Field("text", description="text or json log lines")
    log_channel: Lower = Field("stderr", description="default log channel (docs/logging.md)")
    log_stack: ChannelList = Field(None, description="the stack channel's channels: single,slack")
    log_level: Level = Field("info", description="debug, info, warning, error or critical")
    log_config: str | None = Field(
        None,
        description="logging dictConfig file (.json, .toml, .yaml) of `conveyor worker`, "
        "`scheduler` and `run`, or off (default: the app's logging, else LOG_CHANNEL)",
    )
    log_deprecations_channel: Channel = Field(
        None, description="log channel that receives Python's deprecation warnings"
    )
    log_path: str = Field("conveyor.log", description="file of the single and daily channels")
    log_days: int = Field(14, ge=1, description="daily log files kept")
    log_slack_webhook_url: Webhook = Field(None, description="Slack incoming webhook")
    log_slack_username: str = Field("Conveyor", description="Slack message author")
    log_slack_emoji: str = Field(":boom:", description="Slack message icon")
    log_slack_level: Level = Field("error", description="lowest level sent to Slack")
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN of the sentry channel")
    log_sentry_level: Level = Field("error", description="lowest level sent to Sentry")
    history_hours: Hours = Field(
        24.0, ge=0, description="hours of per-minute throughput history kept (0: none)"
    )
    alert_wait_seconds: Seconds | None = Field(
        None, gt=0, description="alert when a queue's oldest ready job waited longer (s)"
    )
    alert_wait_queues: WaitThresholds = Field(
        None, description="per-queue wait thresholds in seconds, e.g. mail=60,reports-*=600"
    )
    alert_channel: LowerOrNone = Field(
        None, description="log channel of wait alerts (default: LOG_CHANNEL)"
    )
    alert_level: Level = Field("error", description="level of wait alert lines")
    alert_interval: Seconds = Field(
        15.0, ge=0.1, le=3600, description="seconds between wait checks, 0.1 to 3600"
    )
    supervisor_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="port of `conveyor run`'s /metrics (default off)"
    )
    supervisor_metrics_host: str = Field(
        "127.0.0.1", description="address of `conveyor run`'s metrics port"
    )

    def __init__(self, **values: Any) -> None:
        given_url = _given_url.get()
        if given_url is not None and "conveyor_url" not in values:
            values = {**values, "conveyor_url": given_url}
        found = resolve(type(self).model_fields, Layers.read(), values)
        _settle(found, values)
        if _strict.get() and found.problems:
            raise ConfigError(explain(found.problems))
        super().__init__(**{**found.values, **values})
        self._origins = found.origins
        self._problems = tuple(found.problems)
        self._notices = tuple(found.notices)
        if not _strict.get():
            for problem in found.problems:
                warn(problem.warning(self._fallback(problem.fields)))
        for notice in found.notices:
            warn(notice)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only keyword arguments: `__init__` reads the other sources, leniently."""
        return (init_settings,)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for check, _fields in _CROSS_CHECKS:
            problem = check(self)
            if problem is not None:
                raise ValueError(problem)
        return self

    # -- what was read, and from where ----------------------------------------------------
    def origin(self, field: str) -> Origin:
        """Where ``field``'s value came from (``default`` when nothing set it)."""
        return self._origins.get(field, Origin("default"))

    def problems(self) -> tuple[str, ...]:
        """The values that were skipped because Conveyor cannot use them, one line each."""
        return tuple(p.text for p in self._problems)

    def notices(self) -> tuple[str, ...]:
        """Likely typos and unused variables found while reading (warnings, never errors)."""
        return self._notices

    def raise_problems(self) -> None:
        """Refuse to go on with skipped values: a `ConfigError` listing each, naming the
        variable, the value and what is accepted. Commands and workers call this at start."""
        if self._problems:
            raise ConfigError(explain(self._problems))

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied. A store URL given here (``Conveyor(url)``,
        ``--url``) replaces the one read from the environment, so a problem with that one
        (``QUEUE_CONNECTION=database`` with ``DB_CONNECTION=mysql``) no longer stops a start."""
        copy = super().model_copy(update=update, deep=deep)
        if update and "conveyor_url" in update:
            copy._problems = tuple(p for p in self._problems if p.fields != ("conveyor_url",))
        return copy

    def _fallback(self, fields: tuple[str, ...]) -> str:
        if not fields:
            return "the defaults"
        return ", ".join(
            f"{f.upper()}={shown_value(f, getattr(self, f))} ({self.origin(f)})" for f in fields
        )

    def __repr_args__(self) -> Any:
        # Error trackers record locals with repr(): the backend URL's password stays out.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "conveyor_url" else value)


#: The checks across settings, with the settings to drop when a variable set them wrong.
_CROSS_CHECKS: tuple[tuple[Callable[[Settings], str | None], tuple[str, ...]], ...] = (
    (mode_problem, ("worker_mode",)),
    (log_problem, ("log_channel", "log_stack")),
    (alert_problem, ("alert_channel",)),
    (retry_backoff_problem, ("worker_backoff_base", "worker_backoff_max")),
    (error_backoff_problem, ("worker_error_backoff", "worker_error_backoff_max")),
)


def _settle(found: Resolution, given: Mapping[str, Any]) -> None:
    """Drop what the environment or a file set that fails a cross-setting check."""
    for check, fields in _CROSS_CHECKS:
        if any(f in given for f in fields):
            continue  # the caller's own choice: refused when the model is built
        problem = check(Settings.model_construct(**found.checked))
        if problem is None:
            continue
        origin = found.origins[fields[0]]
        own = None
        if origin.kind in ("env", ".env") and not origin.name.upper().startswith(PREFIX):
            own = PREFIX + fields[0].upper()
        found.problems.append(Problem(fields, f"{problem} ({fields[0].upper()}: {origin})", own))
        for f in fields:
            found.values.pop(f, None)
            found.checked.pop(f, None)
            found.origins[f] = Origin("default")


def load_settings(*, strict: bool = False, **overrides: Any) -> Settings:
    """Read settings; ``overrides`` (e.g. CLI flags) win over every other source when not
    None, and a wrong one is a `ConfigError`. A wrong value from elsewhere is skipped with
    a `ConfigWarning`, or with ``strict`` a `ConfigError` too."""
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _strict.set(strict)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    finally:
        _strict.reset(token)


def _explain(exc: ValidationError) -> str:
    lines = ["invalid Conveyor settings:"]
    for err in exc.errors():
        if not err["loc"]:  # a check across several settings: its message names them
            lines.append("  " + str(err["msg"]).removeprefix("Value error, "))
            continue
        field = str(err["loc"][0])
        info = Settings.model_fields.get(field)
        hint = f" ({info.description})" if info is not None and info.description else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  {field.upper()}={shown_value(field, err.get('input'))}: {msg}{hint}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_URL",
    "LOG_CHANNELS",
    "WORKER_MODES",
    "ConfigWarning",
    "LogLevel",
    "Origin",
    "Settings",
    "WorkerMode",
    "alert_problem",
    "load_settings",
    "log_problem",
    "mode_problem",
    "parse_duration",
    "parse_thresholds",
    "store_url_given",
    "url_problem",
    "webhook_problem",
]
