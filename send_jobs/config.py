"""Kannel gateway and receiver settings from environment variables (the mapping the entry
point read, ``Settings.gateway_env``), with safe defaults.

Secrets (Kannel passwords, the receiver's shared secret) come from env vars; when unset, they
are generated once into ``<kannel state>/secrets.json`` (mode 0600, git-ignored) so a local
Kannel, the sender and the receiver agree without anything secret in the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from warehouse.settings import Settings


@dataclass(frozen=True)
class KannelConfig:
    state: Path
    host: str
    admin_port: int
    smsbox_port: int
    carrier_port: int
    inject_port: int
    sendsms_port: int
    receiver_port: int
    links_port: int  # the link service (retentext links)
    admin_password: str = field(repr=False)
    sendsms_password: str = field(repr=False)
    receiver_secret: str = field(repr=False)
    concurrency: int
    rate_per_s: float
    max_attempts: int
    timeout_s: float
    reply_region: str = "US"  # a national-format reply sender is read in this country
    smsc_regions: tuple[tuple[str, str], ...] = ()  # (Kannel smsc-id, country) overrides
    unified_prefix: str = "+,00,011"  # Kannel's own normalisation of international prefixes
    carrier: str = "fake"  # fake: fakesmsc on loopback; smpp: a carrier's SMSC
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = field(default="", repr=False)
    smpp_system_type: str = ""
    smpp_throughput: float = 50.0
    smpp_msg_id_type: int = 0

    @property
    def sendsms_url(self) -> str:
        return f"http://{self.host}:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def receiver_url(self) -> str:
        return f"http://{self.host}:{self.receiver_port}"

    def on_ports(self, state: Path, base: int, **changes) -> KannelConfig:
        """The same settings with every port laid out from ``base`` and its own state folder
        (tests and benchmarks run their own Kannel beside any other)."""
        return replace(
            self, state=state, admin_port=base, smsbox_port=base + 1, carrier_port=base + 2,
            inject_port=base + 3, sendsms_port=base + 13, receiver_port=base + 80,
            links_port=base + 81, **changes,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Settings) -> KannelConfig:
        """The gateway of the pipeline's settings (its variables and state folder)."""
        return cls.from_env(dict(settings.gateway_env), settings.kannel_state)

    @classmethod
    def from_env(cls, env: Mapping[str, str], state: Path | None = None) -> KannelConfig:
        """Settings from ``env`` (the variables an entry point read); ``state`` overrides
        RETENTEXT_KANNEL_STATE."""

        def _env(name: str, default: str) -> str:
            return env.get(name) or default

        state = (state or Path(_env("RETENTEXT_KANNEL_STATE", "data/kannel"))).resolve()
        base = int(_env("RETENTEXT_KANNEL_BASE_PORT", "13000"))
        stored = _stored_secrets(state)
        return cls(
            state=state,
            host="127.0.0.1",
            admin_port=base,
            smsbox_port=base + 1,
            carrier_port=base + 2,
            inject_port=base + 3,
            sendsms_port=base + 13,
            receiver_port=int(_env("RETENTEXT_RECEIVER_PORT", str(base + 80))),
            links_port=int(_env("RETENTEXT_LINKS_PORT", str(base + 81))),
            admin_password=_env("RETENTEXT_KANNEL_ADMIN_PASSWORD", stored["admin_password"]),
            sendsms_password=_env("RETENTEXT_KANNEL_PASSWORD", stored["sendsms_password"]),
            receiver_secret=_env("RETENTEXT_RECEIVER_SECRET", stored["receiver_secret"]),
            concurrency=int(_env("RETENTEXT_KANNEL_CONCURRENCY", "16")),
            rate_per_s=float(_env("RETENTEXT_KANNEL_RATE", "1000")),
            max_attempts=int(_env("RETENTEXT_KANNEL_MAX_ATTEMPTS", "4")),
            timeout_s=float(_env("RETENTEXT_KANNEL_TIMEOUT", "10")),
            reply_region=_env("RETENTEXT_SMS_COUNTRY", "US").upper(),
            smsc_regions=_pairs(_env("RETENTEXT_SMSC_COUNTRIES", "")),
            unified_prefix=_env("RETENTEXT_KANNEL_UNIFIED_PREFIX", "+,00,011"),
            carrier=_carrier(_env("RETENTEXT_KANNEL_CARRIER", "fake")),
            smpp_host=_env("RETENTEXT_SMPP_HOST", "127.0.0.1"),
            smpp_port=int(_env("RETENTEXT_SMPP_PORT", "2775")),
            smpp_system_id=_env("RETENTEXT_SMPP_SYSTEM_ID", ""),
            smpp_password=_env("RETENTEXT_SMPP_PASSWORD", ""),
            smpp_system_type=_env("RETENTEXT_SMPP_SYSTEM_TYPE", ""),
            smpp_throughput=float(_env("RETENTEXT_SMPP_THROUGHPUT", "50")),
            smpp_msg_id_type=int(_env("RETENTEXT_SMPP_MSG_ID_TYPE", "0"), 0),
        )


def _carrier(kind: str) -> str:
    if kind not in ("fake", "smpp"):
        raise ValueError(f"RETENTEXT_KANNEL_CARRIER must be fake or smpp, not {kind!r}")
    return kind


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``carrier=US,uk-link=GB`` -> (("carrier", "US"), ("uk-link", "GB"))."""
    pairs = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"RETENTEXT_SMSC_COUNTRIES: {item!r} is not smsc-id=COUNTRY")
        pairs.append((key.strip(), value.strip().upper()))
    return tuple(pairs)


def _stored_secrets(state: Path) -> dict[str, str]:
    """The generated secrets, made once: concurrent first runs wait on one lock and the
    file is created 0600 and complete (temporary name, fsync, rename)."""
    path = state / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "secrets.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # another process made them while we waited
            return json.loads(path.read_text())
        values = {
            k: secrets.token_urlsafe(18)
            for k in ("admin_password", "sendsms_password", "receiver_secret")
        }
        write_private(path, json.dumps(values).encode())
    return values


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only from the first byte: a temporary name created
    0600, fsynced, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
