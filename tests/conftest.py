"""Shared fixtures. Everything here is offline: servers bind 127.0.0.1 only."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    from nlp.encoder import get_encoder

    return get_encoder()


@pytest.fixture(scope="session")
def stance_model(encoder):  # type: ignore[no-untyped-def]
    from nlp.stance import StanceModel

    return StanceModel(encoder=encoder)


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Settings pointing every output into tmp_path, with no SMTP host."""
    from flows.settings import get_settings

    for key in list(os.environ):
        if key.startswith("CSTOWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CSTOWATCH_DB", str(tmp_path / "test.duckdb"))
    monkeypatch.setenv("CSTOWATCH_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("CSTOWATCH_LOCK_TIMEOUT", "5")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
