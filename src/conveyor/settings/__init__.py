"""Settings, from the environment, a ``.env`` file, and keyword overrides (CLI flags win).

Variable names are the seeds' own (``WORKER_CONCURRENCY``, ``JOB_TIMEOUT``, ...), without a
prefix; ``CONVEYOR_URL`` picks the backend (``REDIS_URL`` when it is unset). A wrong value is
a `ConfigError` that names the variable, the value, and what is accepted: the checks behind
those messages are in `conveyor.settings.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from conveyor.errors import ConfigError
from conveyor.job import Priority
from conveyor.redaction import MASK, origin, redact_url
from conveyor.settings.checks import (
    LOG_CHANNELS,
    alert_problem,
    log_problem,
    mode_problem,
    parse_thresholds,
    url_problem,
    webhook_problem,
)

DEFAULT_URL = "sqlite:///conveyor.db"

WorkerMode = Literal["thin", "default", "specialized", "job-specialized", "scheduler-only"]
WORKER_MODES: tuple[str, ...] = get_args(WorkerMode)

CommaList = Annotated[tuple[str, ...] | None, NoDecode]
PriorityList = Annotated[tuple[Priority, ...] | None, NoDecode]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
# Queue name or glob -> seconds, from "mail=60,reports-*=600" (ALERT_WAIT_QUEUES).
WaitThresholds = Annotated[dict[str, float] | None, NoDecode]


class Settings(BaseSettings):
    """Every setting Conveyor reads. Field ``x_y`` is the variable ``X_Y``."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # REDIS_URL (the seeds' name) is honoured when CONVEYOR_URL is not set.
    conveyor_url: str = Field(
        DEFAULT_URL,
        validation_alias=AliasChoices("conveyor_url", "redis_url"),
        description="backend URL; REDIS_URL is used when CONVEYOR_URL is unset",
    )
    worker_concurrency: int = Field(10, ge=1, le=10_000, description="jobs run at once")
    worker_queues: CommaList = Field(None, description="queue names or glob patterns")
    worker_priorities: PriorityList = Field(None, description="high, normal, low")
    worker_job_types: CommaList = Field(None, description="task names")
    worker_max_jobs: int | None = Field(None, ge=1, description="exit after this many jobs")
    worker_memory_limit: int | None = Field(None, ge=1, description="exit above this RSS (MB)")
    worker_max_time: float | None = Field(None, gt=0, description="exit after seconds")
    worker_sleep: float = Field(1.0, gt=0, le=60, description="longest idle wait (s)")
    worker_timeout: float | None = Field(
        None, gt=0, description="cap on the timeout of every job this worker runs (s)"
    )
    worker_tries: int | None = Field(
        None, ge=1, description="cap on the runs a job gets in this worker (Laravel --tries)"
    )
    worker_grace_period: float = Field(30.0, ge=0, description="shutdown wait (s)")
    worker_loop_warn: float = Field(
        2.0, gt=0, description="log a blocked event loop after this many seconds"
    )
    worker_loop_grace: float = Field(
        10.0,
        ge=0,
        description="exit (code 4) once a loop stays blocked past its job's timeout plus this (s)",
    )
    job_timeout: float = Field(300.0, gt=0, description="default task timeout (s)")
    max_retries: int = Field(3, ge=0, le=1000, description="default retries")
    lease_seconds: float = Field(30.0, ge=0.5, description="lease length (s)")
    max_recoveries: int = Field(3, ge=1, description="lost leases before poison pill")
    reaper_interval: float = Field(5.0, gt=0, description="expired-lease sweep period (s)")
    enable_reaper: bool = Field(True, description="run the lease reaper in workers")
    max_payload_bytes: int = Field(1024 * 1024, ge=1024, description="argument size limit")
    result_ttl: float = Field(86_400.0, ge=0, description="keep succeeded jobs (s)")
    dead_ttl: float = Field(30 * 86_400.0, ge=0, description="keep dead jobs (s)")
    worker_mode: WorkerMode | None = Field(
        None, description="thin, default, specialized, job-specialized or scheduler-only"
    )
    enable_scheduler: bool | None = Field(
        None, description="run the built-in scheduler in `conveyor worker` (true/false)"
    )
    scheduler_interval: float = Field(
        1.0, ge=0.1, le=60, description="seconds between scheduler ticks, 0.1 to 60"
    )
    worker_metrics_interval: float = Field(
        30.0, ge=0, description="seconds between a worker's metrics lines (0: none)"
    )
    log_format: Literal["text", "json"] = Field("text", description="text or json log lines")
    log_channel: str = Field("stderr", description="default log channel (docs/logging.md)")
    log_stack: CommaList = Field(None, description="the stack channel's channels: single,slack")
    log_level: LogLevel = Field("info", description="debug, info, warning, error or critical")
    log_path: str = Field("conveyor.log", description="file of the single and daily channels")
    log_days: int = Field(14, ge=1, description="daily log files kept")
    log_slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming webhook")
    log_slack_username: str = Field("Conveyor", description="Slack message author")
    log_slack_emoji: str = Field(":boom:", description="Slack message icon")
    log_slack_level: LogLevel = Field("error", description="lowest level sent to Slack")
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN of the sentry channel")
    log_sentry_level: LogLevel = Field("error", description="lowest level sent to Sentry")
    history_hours: float = Field(
        24.0, ge=0, description="hours of per-minute throughput history kept (0: none)"
    )
    alert_wait_seconds: float | None = Field(
        None, gt=0, description="alert when a queue's oldest ready job waited longer (s)"
    )
    alert_wait_queues: WaitThresholds = Field(
        None, description="per-queue wait thresholds in seconds, e.g. mail=60,reports-*=600"
    )
    alert_channel: str | None = Field(
        None, description="log channel of wait alerts (default: LOG_CHANNEL)"
    )
    alert_level: LogLevel = Field("error", description="level of wait alert lines")
    alert_interval: float = Field(
        15.0, ge=0.1, le=3600, description="seconds between wait checks, 0.1 to 3600"
    )
    supervisor_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="port of `conveyor run`'s /metrics (default off)"
    )
    supervisor_metrics_host: str = Field(
        "127.0.0.1", description="address of `conveyor run`'s metrics port"
    )

    @field_validator("worker_queues", "worker_job_types", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            items = tuple(v.strip() for v in value.split(",") if v.strip())
            return items or None
        return value

    @field_validator("worker_priorities", mode="before")
    @classmethod
    def _priorities(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if value is None or not value:
            return None
        try:
            return tuple(Priority.parse(v) for v in value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("worker_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower().replace("_", "-") or None
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> Settings:
        problem = mode_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "log_level", "log_slack_level", "log_sentry_level", "log_channel", mode="before"
    )
    @classmethod
    def _lower_log(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_stack", mode="before")
    @classmethod
    def _split_stack(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip().lower() for v in value.split(",") if v.strip()) or None
        return value

    @model_validator(mode="after")
    def _log_needs(self) -> Settings:
        problem = log_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("alert_wait_queues", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_thresholds(value)
        return value

    @field_validator("alert_wait_queues")
    @classmethod
    def _positive(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for queue, seconds in (value or {}).items():
            if not seconds > 0 or seconds == float("inf"):
                raise ValueError(f"the threshold of {queue!r} must be a number of seconds > 0")
        return value or None

    @field_validator("alert_channel", "alert_level", mode="before")
    @classmethod
    def _lower_alert(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _alert_needs(self) -> Settings:
        problem = alert_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("log_slack_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:

        if value is None or not value.get_secret_value().strip():
            return None  # LOG_SLACK_WEBHOOK_URL= (empty) means unset
        problem = webhook_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    def __repr_args__(self) -> Any:
        # Error trackers record locals with repr(): the backend URL's password stays out.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "conveyor_url" else value)

    @field_validator("conveyor_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "a backend URL needs a scheme: memory://, sqlite:///path.db, redis://, "
                "postgresql://"
            )
        problem = url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings; ``overrides`` (e.g. CLI flags) win over the environment when not None."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = ["invalid Conveyor settings:"]
    for err in exc.errors():
        if not err["loc"]:  # a check across several settings: its message names them
            lines.append("  " + str(err["msg"]).removeprefix("Value error, "))
            continue
        field = str(err["loc"][0])
        info = Settings.model_fields.get(field)
        hint = f" ({info.description})" if info is not None and info.description else ""
        lines.append(
            f"  {field.upper()}={_shown_input(field, err.get('input'))}: {err['msg']}{hint}"
        )
    return "\n".join(lines)


#: Settings whose whole value is a secret (a mistyped one is never echoed in full).
_SECRET_FIELDS = frozenset({"log_slack_webhook_url", "sentry_dsn"})


def _shown_input(field: str, value: Any) -> str:
    """The rejected value as an error may quote it: URLs without their secrets."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if field in _SECRET_FIELDS:
        return repr(origin(value)) if isinstance(value, str) else repr(MASK)
    if field == "conveyor_url" and isinstance(value, str):
        return repr(redact_url(value))
    return repr(value)


__all__ = [
    "DEFAULT_URL",
    "LOG_CHANNELS",
    "WORKER_MODES",
    "Settings",
    "WorkerMode",
    "alert_problem",
    "load_settings",
    "log_problem",
    "mode_problem",
    "parse_thresholds",
    "url_problem",
    "webhook_problem",
]
