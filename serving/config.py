"""Server settings: command-line flags override environment variables, which override defaults.

Vertex AI configures a custom container only through environment variables (`AIP_*`), so
every knob a deployer may need has an env equivalent; the flags exist for people and tests.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 8080
DEFAULT_HEALTH_ROUTE = "/health"
DEFAULT_PREDICT_ROUTE = "/predict"
STATS_ROUTE = "/stats"
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_BATCH_WAIT_MS = 5.0
DEFAULT_MAX_NEW_TOKENS_CAP = 64
# How long a server whose model failed to load keeps answering 503 with the error before
# it exits non-zero: long enough for a health probe or a person to read the reason.
DEFAULT_FAIL_EXIT_S = 5.0
# A client has this long to send a request's headers, and again its body (then 408).
DEFAULT_READ_TIMEOUT_S = 30.0

ENV_MAX_BATCH_SIZE = "DEPLOYTEST_MAX_BATCH_SIZE"
ENV_MAX_BATCH_WAIT_MS = "DEPLOYTEST_MAX_BATCH_WAIT_MS"
ENV_MAX_NEW_TOKENS_CAP = "DEPLOYTEST_MAX_NEW_TOKENS_CAP"
# Test hook: sleep this many seconds before loading, so "health before ready" is observable.
ENV_LOAD_DELAY_S = "DEPLOYTEST_SERVING_LOAD_DELAY_S"
ENV_FAIL_EXIT_S = "DEPLOYTEST_SERVING_FAIL_EXIT_S"
ENV_READ_TIMEOUT_S = "DEPLOYTEST_READ_TIMEOUT_S"
# A pause after each generation step (one token of every row of a batch): stands in for a
# slower chip. The embedded Vertex AI sets it per machine type (emulator/machine_profiles.json)
# so that right-sizing candidates differ measurably on one laptop; 0 on Vertex AI.
ENV_STEP_DELAY_MS = "DEPLOYTEST_STEP_DELAY_MS"
MAX_STEP_DELAY_MS = 10_000.0


class ConfigError(ValueError):
    """A setting is missing or out of range; the message names the flag or variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, typed and validated."""

    model_uri: str
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    health_route: str = DEFAULT_HEALTH_ROUTE
    predict_route: str = DEFAULT_PREDICT_ROUTE
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_wait_ms: float = DEFAULT_MAX_BATCH_WAIT_MS
    max_new_tokens_cap: int = DEFAULT_MAX_NEW_TOKENS_CAP
    load_delay_s: float = 0.0
    fail_exit_s: float = DEFAULT_FAIL_EXIT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    step_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.model_uri:
            raise ConfigError("no model: pass --model-dir or set AIP_STORAGE_URI")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1..65535, got {self.port}")
        for name in ("health_route", "predict_route"):
            route = getattr(self, name)
            if not route.startswith("/"):
                raise ConfigError(f"{name} must start with '/', got {route!r}")
        routes = (self.health_route, self.predict_route, STATS_ROUTE)
        if len(set(routes)) != len(routes):
            raise ConfigError(f"health, predict and stats routes must differ: {routes}")
        if self.max_batch_size < 1:
            raise ConfigError(f"max batch size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_batch_wait_ms <= 1000:
            raise ConfigError(f"max batch wait must be 0..1000 ms, got {self.max_batch_wait_ms}")
        if self.max_new_tokens_cap < 1:
            raise ConfigError(f"max new tokens cap must be >= 1, got {self.max_new_tokens_cap}")
        if self.load_delay_s < 0 or self.fail_exit_s < 0:
            raise ConfigError("load delay and fail exit delay must be >= 0")
        if not 0 <= self.step_delay_ms <= MAX_STEP_DELAY_MS:
            raise ConfigError(
                f"{ENV_STEP_DELAY_MS} must be 0..{MAX_STEP_DELAY_MS:g} ms, got {self.step_delay_ms}"
            )
        if not 0 < self.read_timeout_s <= 3600:
            raise ConfigError(f"read timeout must be within (0, 3600] s, got {self.read_timeout_s}")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the server flags. Defaults are None so the environment can fill them in."""
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        help="model directory (save_pretrained layout) or gs://bucket/prefix "
        "(default: $AIP_STORAGE_URI)",
    )
    parser.add_argument(
        "--port", type=int, metavar="PORT", help=f"port (default: $AIP_HTTP_PORT or {DEFAULT_PORT})"
    )
    parser.add_argument("--host", metavar="ADDR", help="address to bind (default: 0.0.0.0)")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        metavar="N",
        help="most instances coalesced into one generate call; 1 turns batching off "
        f"(default: ${ENV_MAX_BATCH_SIZE} or {DEFAULT_MAX_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-batch-wait-ms",
        type=float,
        metavar="MS",
        help="longest a request waits for others to join its batch "
        f"(default: ${ENV_MAX_BATCH_WAIT_MS} or {DEFAULT_MAX_BATCH_WAIT_MS:g})",
    )
    parser.add_argument(
        "--max-new-tokens-cap",
        type=int,
        metavar="N",
        help="server limit on max_new_tokens; larger requests are capped "
        f"(default: ${ENV_MAX_NEW_TOKENS_CAP} or {DEFAULT_MAX_NEW_TOKENS_CAP})",
    )
    parser.add_argument(
        "--read-timeout-s",
        type=float,
        metavar="S",
        help="a client must send a request's headers, and then its body, within this many "
        f"seconds or get 408 (default: ${ENV_READ_TIMEOUT_S} or {DEFAULT_READ_TIMEOUT_S:g})",
    )


def _env(env: Mapping[str, str], name: str, kind: type, default):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def settings_from(
    args: argparse.Namespace | None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from parsed flags (may be None) and the environment (default os.environ)."""
    env = os.environ if env is None else env

    def pick(flag: str, var: str, kind: type, default):
        value = getattr(args, flag, None) if args is not None else None
        return value if value is not None else _env(env, var, kind, default)

    return Settings(
        model_uri=pick("model_dir", "AIP_STORAGE_URI", str, ""),
        host=(getattr(args, "host", None) if args is not None else None) or "0.0.0.0",
        port=pick("port", "AIP_HTTP_PORT", int, DEFAULT_PORT),
        health_route=_env(env, "AIP_HEALTH_ROUTE", str, DEFAULT_HEALTH_ROUTE),
        predict_route=_env(env, "AIP_PREDICT_ROUTE", str, DEFAULT_PREDICT_ROUTE),
        max_batch_size=pick("max_batch_size", ENV_MAX_BATCH_SIZE, int, DEFAULT_MAX_BATCH_SIZE),
        max_batch_wait_ms=pick(
            "max_batch_wait_ms", ENV_MAX_BATCH_WAIT_MS, float, DEFAULT_MAX_BATCH_WAIT_MS
        ),
        max_new_tokens_cap=pick(
            "max_new_tokens_cap", ENV_MAX_NEW_TOKENS_CAP, int, DEFAULT_MAX_NEW_TOKENS_CAP
        ),
        load_delay_s=_env(env, ENV_LOAD_DELAY_S, float, 0.0),
        fail_exit_s=_env(env, ENV_FAIL_EXIT_S, float, DEFAULT_FAIL_EXIT_S),
        read_timeout_s=pick("read_timeout_s", ENV_READ_TIMEOUT_S, float, DEFAULT_READ_TIMEOUT_S),
        step_delay_ms=_env(env, ENV_STEP_DELAY_MS, float, 0.0),
    )
