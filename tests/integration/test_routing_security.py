"""Authentication and authorisation of the routing server: bearer tokens, TLS, mutual TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from cctriage.routing.v1 import routing_pb2 as pb
from cctriage.routing.v1 import routing_pb2_grpc as rpc
from cctriage_routing.testing import in_process_server

CHAT = 1
TOKENS = "tri-token=triage,a1-token=agent:a1,sup-token=supervisor"


def _login(agent_id: str) -> pb.LoginRequest:
    return pb.LoginRequest(
        agent_id=agent_id,
        tenant_id="t",
        tier=1,
        languages=["en"],
        capacities=[pb.ChannelCapacity(channel=CHAT, capacity=1)],
    )


def _route() -> pb.RouteConversationRequest:
    return pb.RouteConversationRequest(
        idempotency_key="k",
        conversation_id="c1",
        tenant_id="t",
        queue="q",
        channel=CHAT,
        language="en",
        stressed=True,
        stress=0.9,
    )


def _bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def channel(tmp_path):
    with in_process_server(tmp_path, ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=TOKENS) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            yield ch


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_missing_or_unknown_token_is_unauthenticated(channel):
    triage = rpc.TriageRoutingStub(channel)
    assert _code(lambda: triage.RouteConversation(_route())) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: triage.RouteConversation(_route(), metadata=_bearer("guess"))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_only_the_triage_service_may_route(channel):
    triage = rpc.TriageRoutingStub(channel)
    assert triage.RouteConversation(_route(), metadata=_bearer("tri-token")).conversation_id == "c1"
    for token in ("a1-token", "sup-token"):
        assert _code(lambda t=token: triage.RouteConversation(_route(), metadata=_bearer(t))) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        stream = triage.RouteStream(iter([_route()]), metadata=_bearer(token))
        assert _code(lambda s=stream: list(s)) == grpc.StatusCode.PERMISSION_DENIED
    acks = list(triage.RouteStream(iter([_route()]), metadata=_bearer("tri-token")))
    assert [a.response.conversation_id for a in acks] == ["c1"] and acks[0].response.duplicate


def test_an_agent_acts_only_as_itself(channel):
    desk = rpc.AgentDesktopStub(channel)
    assert desk.Login(_login("a1"), metadata=_bearer("a1-token")).agent_id == "a1"
    denied = _code(lambda: desk.Login(_login("a2"), metadata=_bearer("a1-token")))
    assert denied == grpc.StatusCode.PERMISSION_DENIED
    rpc.TriageRoutingStub(channel).RouteConversation(_route(), metadata=_bearer("tri-token"))
    stream = desk.StreamOffers(pb.StreamOffersRequest(agent_id="a1"), metadata=_bearer("a1-token"))
    next(stream)  # status
    offer = next(stream).offer
    # Neither the triage service nor a supervisor can accept an agent's offer.
    for token in ("tri-token", "sup-token"):
        request = pb.AcceptOfferRequest(agent_id="a1", offer_id=offer.offer_id)
        assert _code(lambda t=token, r=request: desk.AcceptOffer(r, metadata=_bearer(t))) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    accepted = desk.AcceptOffer(
        pb.AcceptOfferRequest(agent_id="a1", offer_id=offer.offer_id), metadata=_bearer("a1-token")
    )
    assert accepted.conversation_id == "c1"
    stream.cancel()


def test_supervisors_read_snapshots_agents_do_not(channel):
    sup = rpc.SupervisorStub(channel)
    assert sup.GetAgentSnapshot(pb.AgentSnapshotRequest(), metadata=_bearer("sup-token")).agents == []
    assert _code(lambda: sup.GetQueueSnapshot(pb.QueueSnapshotRequest(), metadata=_bearer("a1-token"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn in (("server", "localhost"), ("triage", "triage"), ("agent", "agent:a1")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            *extra,
            cwd=d,
        )
    return d


def _tls_channel(port: int, certs: Path, client: str | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(certs / f"{client}.pem").read_bytes() if client else None,
    )
    return grpc.secure_channel(f"localhost:{port}", creds)


def test_tls_with_token(tmp_path, certs):
    with in_process_server(
        tmp_path,
        ROUTING_AUTH_ENABLED="1",
        ROUTING_AUTH_TOKENS=TOKENS,
        ROUTING_TLS_CERT=str(certs / "server.pem"),
        ROUTING_TLS_KEY=str(certs / "server.key"),
    ) as server:
        with _tls_channel(server.port, certs, None) as ch:
            reply = rpc.TriageRoutingStub(ch).RouteConversation(
                _route(), metadata=_bearer("tri-token"), timeout=10
            )
            assert reply.conversation_id == "c1"
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as plain:
            assert _code(lambda: rpc.TriageRoutingStub(plain).RouteConversation(_route(), timeout=5)) == (
                grpc.StatusCode.UNAVAILABLE
            )


def test_mutual_tls_client_certificate_is_the_principal(tmp_path, certs):
    with in_process_server(
        tmp_path,
        ROUTING_AUTH_ENABLED="1",
        ROUTING_TLS_CERT=str(certs / "server.pem"),
        ROUTING_TLS_KEY=str(certs / "server.key"),
        ROUTING_TLS_CLIENT_CA=str(certs / "ca.pem"),
    ) as server:
        with _tls_channel(server.port, certs, "triage") as ch:
            assert rpc.TriageRoutingStub(ch).RouteConversation(_route(), timeout=10).conversation_id == "c1"
            assert _code(lambda: rpc.AgentDesktopStub(ch).Login(_login("a1"), timeout=10)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        with _tls_channel(server.port, certs, "agent") as ch:
            assert rpc.AgentDesktopStub(ch).Login(_login("a1"), timeout=10).agent_id == "a1"
            assert _code(lambda: rpc.TriageRoutingStub(ch).RouteConversation(_route(), timeout=10)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
        with _tls_channel(server.port, certs, None) as ch:  # no client certificate: handshake refused
            assert _code(lambda: rpc.TriageRoutingStub(ch).RouteConversation(_route(), timeout=5)) == (
                grpc.StatusCode.UNAVAILABLE
            )
