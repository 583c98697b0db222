"""One typed settings object, read from ``CSTOWATCH_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSTOWATCH_", extra="ignore")

    db: Path = Path("data/cstowatch.duckdb")
    outbox: Path = Path("data/outbox")
    report: Path = Path("data/report.html")

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    # name of a Prefect Secret block holding the password, read when smtp_password is unset
    smtp_password_block: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = 20.0
    alert_from: str = "cstowatch <cstowatch@localhost>"
    alert_to: Annotated[list[str], NoDecode] = ["analyst@localhost"]

    # how long the pipeline's writer waits for an analyst's lock on the DuckDB file
    lock_timeout: float = 120.0

    encoder_dir: Path | None = None
    stance_model_dir: Path | None = None

    user_agent: str = "cstowatch/0.1 (+https://github.com/cstowatch/cstowatch; media research bot)"
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
    source_concurrency: int = 4
    # seconds a feed request may wait for each step (the whole answer gets three times as long)
    fetch_timeout: float = 20.0
    # seconds one source's spiders may run before they are stopped (the source: timed_out)
    source_timeout: float = 1800.0
    # failed fetches of an article URL before it is given up (pending_items.status = 'failed')
    max_fetch_attempts: int = 3

    window_days: int = 7
    baseline_days: int = 28
    min_articles: int = 30
    min_effect_pp: float = 10.0
    fdr: float = 0.05
    cooldown_hours: float = 24.0
    correct_confusion: bool = True

    @field_validator("alert_to", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
