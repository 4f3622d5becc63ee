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
    """Frozen settings; refuses placeholder secrets outside development and tests;
    its errors never show the inputs (``hide_input_in_errors``: every subclass too).

    Subclasses list their required secrets in ``secret_fields`` and the ones
    that may be unset (a disabled integration) in ``optional_secret_fields``.
    """

    # An empty variable means unset (compose passes optional settings through empty).
    # An error never shows the inputs: they hold the other secrets.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", env_ignore_empty=True, hide_input_in_errors=True
    )

    secret_fields: ClassVar[tuple[str, ...]] = ()
    optional_secret_fields: ClassVar[tuple[str, ...]] = ()

    #: ``development``, ``test`` or ``production`` (production refuses placeholder secrets).
    environment: Environment = Field(
        default=Environment.DEVELOPMENT, validation_alias="TAKEACTION_ENV"
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServiceSettings:
        if self.environment is Environment.PRODUCTION:
            optional = [n for n in self.optional_secret_fields if getattr(self, n) is not None]
            for name in (*self.secret_fields, *optional):
                value = getattr(self, name)
                raw = value.get_secret_value() if isinstance(value, SecretStr) else value
                if raw is None or raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 16:
                    raise ValueError(
                        f"{name} is missing or a placeholder; set a real secret "
                        "(at least 16 characters) in the environment"
                    )
        return self
