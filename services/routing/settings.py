"""Settings of the routing service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from cctriage_common.settings import SettingsError, env_field
from cctriage_routing.engine import RoutingConfig

PRINCIPALS_HELP = (
    "Bearer tokens and who they are: 'token=principal,...'; principal is 'triage', 'supervisor' "
    "or 'agent:<agent_id>'. Callers send 'authorization: Bearer <token>'."
)


@dataclass(frozen=True)
class RoutingSettings:
    listen: str = env_field(
        "ROUTING_LISTEN", "127.0.0.1:50061", "gRPC listen address (host:port; port 0 = any)."
    )
    metrics_port: int = env_field(
        "ROUTING_METRICS_PORT", 9461, "Prometheus /metrics HTTP port (0 = any free port, -1 = off)."
    )
    metrics_host: str = env_field("ROUTING_METRICS_HOST", "127.0.0.1", "Address the /metrics server binds.")
    journal_path: str = env_field(
        "ROUTING_JOURNAL_PATH", "var/routing/journal.sqlite3", "SQLite journal holding all routing state."
    )
    journal_synchronous: str = env_field(
        "ROUTING_JOURNAL_SYNCHRONOUS",
        "FULL",
        "SQLite synchronous mode: FULL (fsync every group commit, survives power loss) or NORMAL "
        "(survives kill -9 of the process, not of the machine).",
    )
    threads: int = env_field(
        "ROUTING_THREADS",
        64,
        "gRPC worker threads; every open StreamOffers holds one, so size it above agents.",
    )
    grace_seconds: float = env_field("ROUTING_GRACE_SECONDS", 10.0, "Seconds in-flight RPCs get on SIGTERM.")
    tiers: int = env_field("ROUTING_TIERS", 3, "Seniority tiers (1 = most senior).")
    senior_tiers: int = env_field(
        "ROUTING_SENIOR_TIERS", 1, "Tiers 1..N count as senior (reserve, occupancy ratio)."
    )
    aging_per_second: float = env_field(
        "ROUTING_AGING_PER_SECOND", 1.0, "Priority points a waiting conversation gains per second."
    )
    bullseye_widen_seconds: float = env_field(
        "ROUTING_BULLSEYE_WIDEN_SECONDS",
        15.0,
        "A stressed conversation may reach one tier further after each of these periods.",
    )
    offer_timeout_seconds: float = env_field(
        "ROUTING_OFFER_TIMEOUT_SECONDS", 20.0, "An agent must accept an offer within this time."
    )
    max_missed_offers: int = env_field(
        "ROUTING_MAX_MISSED_OFFERS", 2, "Missed offers in a row after which the agent is set AWAY."
    )
    reserve_share: float = env_field(
        "ROUTING_RESERVE_SHARE", 0.2, "Share of senior capacity kept free for stressed customers (0..1)."
    )
    wrap_up_seconds: float = env_field(
        "ROUTING_WRAP_UP_SECONDS", 0.0, "Default wrap-up after a completed conversation (0 = none)."
    )
    reoffer_cooldown_seconds: float = env_field(
        "ROUTING_REOFFER_COOLDOWN_SECONDS",
        30.0,
        "An agent who declined or missed a conversation is not offered it again for this long.",
    )
    idempotency_keys: int = env_field(
        "ROUTING_IDEMPOTENCY_KEYS",
        500_000,
        "Idempotency keys remembered (memory, journal), oldest forgotten first.",
    )
    finished_conversations: int = env_field(
        "ROUTING_FINISHED_CONVERSATIONS",
        500_000,
        "Finished conversations remembered for sequence checks, oldest forgotten first.",
    )
    kafka_bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "", "Kafka bootstrap servers; empty = do not publish routing decisions."
    )
    decisions_topic: str = env_field(
        "ROUTING_DECISIONS_TOPIC", "routing-decisions", "Topic for every routing decision (RoutingDecision)."
    )
    auth_enabled: bool = env_field(
        "ROUTING_AUTH_ENABLED", True, "Require a known caller (token or client certificate) on every RPC."
    )
    auth_tokens: str = env_field("ROUTING_AUTH_TOKENS", "", PRINCIPALS_HELP)
    tls_cert: str = env_field(
        "ROUTING_TLS_CERT", "", "PEM server certificate; with ROUTING_TLS_KEY turns TLS on."
    )
    tls_key: str = env_field("ROUTING_TLS_KEY", "", "PEM private key of the server certificate.")
    tls_client_ca: str = env_field(
        "ROUTING_TLS_CLIENT_CA",
        "",
        "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS). "
        "The certificate's common name is the caller's principal.",
    )
    log_level: str = env_field("LOG_LEVEL", "INFO", "Log level.")

    def validate(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("ROUTING_TLS_CERT and ROUTING_TLS_KEY must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise SettingsError("ROUTING_TLS_CLIENT_CA needs ROUTING_TLS_CERT and ROUTING_TLS_KEY")
        if self.journal_synchronous.upper() not in ("NORMAL", "FULL"):
            raise SettingsError(
                f"ROUTING_JOURNAL_SYNCHRONOUS={self.journal_synchronous!r} must be NORMAL or FULL"
            )
        if self.threads < 2:
            raise SettingsError("ROUTING_THREADS must be at least 2")
        try:
            self.routing_config().validate()
        except ValueError as exc:
            raise SettingsError(f"invalid ROUTING_* matching setting: {exc}") from None
        self.tokens()

    def routing_config(self) -> RoutingConfig:
        return RoutingConfig(
            tiers=self.tiers,
            senior_tiers=self.senior_tiers,
            aging_per_second=self.aging_per_second,
            bullseye_widen_seconds=self.bullseye_widen_seconds,
            offer_timeout_seconds=self.offer_timeout_seconds,
            max_missed_offers=self.max_missed_offers,
            reserve_share=self.reserve_share,
            wrap_up_seconds=self.wrap_up_seconds,
            reoffer_cooldown_seconds=self.reoffer_cooldown_seconds,
            idempotency_keys=self.idempotency_keys,
            finished_conversations=self.finished_conversations,
        )

    def tokens(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, item in enumerate(p.strip() for p in self.auth_tokens.split(",") if p.strip()):
            token, sep, principal = item.partition("=")
            if not sep or not token or not principal:
                raise SettingsError(f"ROUTING_AUTH_TOKENS item {i} must look like token=principal")
            if principal not in ("triage", "supervisor") and not (
                principal.startswith("agent:") and len(principal) > 6
            ):
                raise SettingsError(
                    f"ROUTING_AUTH_TOKENS item {i}: principal must be triage, supervisor or agent:<id>"
                )
            out[token] = principal
        return out
