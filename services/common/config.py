"""Settings base shared by every service's pydantic-settings class."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


#: Values that must never guard a real deployment.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "dev"})


class ServiceSettings(BaseSettings):
    """Frozen settings; refuses placeholder secrets outside development and tests.

    Subclasses list the names of their secret fields in ``secret_fields``.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    secret_fields: ClassVar[tuple[str, ...]] = ()

    #: One switch for every service, read from ``TAKEACTION_ENV``.
    environment: Environment = Field(
        default=Environment.DEVELOPMENT, validation_alias="TAKEACTION_ENV"
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServiceSettings:
        if self.environment is Environment.PRODUCTION:
            for name in self.secret_fields:
                value = getattr(self, name)
                raw = value.get_secret_value() if isinstance(value, SecretStr) else value
                if raw is None or raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 16:
                    raise ValueError(
                        f"{name} is missing or a placeholder; set a real secret "
                        "(at least 16 characters) in the environment"
                    )
        return self
