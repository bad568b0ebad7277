"""``treasury operator`` and ``approve --key``, in process, on SQLite and PostgreSQL: the
path an operator types, and the mistakes they make (each one line, nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_admin import cli, enqueue, ok, one_line_error, refused, snapshot

from treasury.domain.status import Status
from treasury.services.admin import Ledger


@pytest.fixture
async def url(migrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The ledger's policy (no policy file in the CLI's environment: approve reads the
    ledger's version)."""
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    policy = tmp_path / "policy.toml"
    policy.write_text('[coins.USDT]\napproval_threshold = "5"\napprovals_required = 2\n')
    ok(await cli("policy", "apply", str(policy), "--as", "admin", "--reason", "t", "--yes"))
    return migrated_url


async def keygen(tmp_path: Path, name: str) -> tuple[Path, Path]:
    private = tmp_path / f"{name}.pem"
    line = ok(await cli("operator", "keygen", "--out", str(private)))
    public = tmp_path / f"{name}.pub"
    public.write_text(line)
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE" not in line and len(line.strip()) == 44
    return private, public


async def awaiting(ledger: Ledger) -> int:
    intent = await enqueue(amount="50")  # requested by alice
    await ledger.intents.transition(
        intent["id"], Status.AWAITING_APPROVAL, reason="policy", actor="test"
    )
    return int(intent["id"])


async def test_register_then_approve_with_keys(url: str, ledger: Ledger, tmp_path: Path) -> None:
    bob_key, bob_pub = await keygen(tmp_path, "bob")
    carol_key, carol_pub = await keygen(tmp_path, "carol")
    intent_id = await awaiting(ledger)
    # before any operator: approvals by name, as before
    assert "no operators" in ok(await cli("operator", "list"))

    said = ok(await cli("operator", "add", "bob", "--public-key", str(bob_pub), "--as", "admin"))
    assert "operator bob added" in said and "signed" in said
    ok(await cli("operator", "add", "carol", "--public-key", str(carol_pub), "--as", "admin"))
    listed = ok(await cli("operator", "list"))
    assert "bob" in listed and "carol" in listed and "current" in listed

    # by name only, now refused; a key that is nobody's, refused; --as not the key's owner
    refused(await cli("approve", str(intent_id), "--as", "bob"), 1, "not signed", "--key")
    stray_key, _ = await keygen(tmp_path, "stray")
    refused(await cli("approve", str(intent_id), "--key", str(stray_key)), 1, "not a registered")
    refused(
        await cli("approve", str(intent_id), "--key", str(bob_key), "--as", "carol"), 1, "bob's"
    )
    first = ok(await cli("approve", str(intent_id), "--key", str(bob_key)))
    assert "approved by bob" in first and "1 more approval" in first
    second = ok(await cli("approve", str(intent_id), "--key", str(carol_key)))
    assert "released to the worker" in second
    assert (await ledger.intents.get(intent_id)).status is Status.QUEUED
    notes = [e.reason for e in await ledger.intents.events(intent_id) if e.kind == "approval"]
    assert notes == [
        "approved by bob (signed) (approval 1 of 2, policy v1)",
        "approved by carol (signed) (approval 2 of 2, policy v1)",
    ]

    gone = ok(await cli("operator", "remove", "bob", "--reason", "left the team", "--as", "admin"))
    assert "removed" in gone
    refused(await cli("approve", str(intent_id), "--key", str(bob_key)), 1, "removed")


async def test_operator_mistakes_are_one_line_and_write_nothing(
    url: str, ledger: Ledger, tmp_path: Path
) -> None:
    _, bob_pub = await keygen(tmp_path, "bob")
    ok(await cli("operator", "add", "bob", "--public-key", str(bob_pub), "--as", "admin"))
    not_a_key = tmp_path / "junk.pub"
    not_a_key.write_text("hello")
    pem_junk = tmp_path / "junk.pem"
    pem_junk.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    before = await snapshot(ledger.engine)
    for args, code, words in (
        (("operator", "add", "bob2", "--public-key", str(bob_pub), "--as", "a"), 1, "already"),
        (("operator", "add", "eve", "--public-key", str(not_a_key), "--as", "a"), 2, "public key"),
        (("operator", "add", "eve", "--public-key", str(pem_junk), "--as", "a"), 2, "--public-key"),
        (("operator", "add", "bad name", "--public-key", str(bob_pub), "--as", "a"), 2, "name"),
        (("operator", "remove", "nobody", "--reason", "x", "--as", "a"), 1, "nobody"),
        (("operator", "remove", "bob", "--reason", " ", "--as", "a"), 2, "reason"),
        (("operator", "keygen", "--out", str(bob_pub)), 2, "exists"),
        (("approve", "1", "--key", str(not_a_key)), 2, "--key"),
        (("approve", "1"), 2, "--as or --key"),
    ):
        err = refused(await cli(*args), code, *words.split())
        one_line_error(err)
    assert await snapshot(ledger.engine) == before


async def test_invite_register_list_and_remove_a_passkey(
    url: str, ledger: Ledger, tmp_path: Path
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from webauthn_authenticator import ORIGIN, RP_ID, Authenticator

    from treasury.services import operators

    _, bob_pub = await keygen(tmp_path, "bob")
    ok(await cli("operator", "add", "bob", "--public-key", str(bob_pub), "--as", "admin"))
    refused(await cli("operator", "invite", "nobody", "--as", "admin"), 1, "nobody")
    refused(await cli("operator", "invite", "bob", "--expires", "soon"), 2, "--expires")
    said_30d = refused(await cli("operator", "invite", "bob", "--expires", "30d"), 1, "--expires")
    assert "30 days is outside 1 minute .. 7 days" in said_30d, said_30d
    said = ok(await cli("operator", "invite", "bob", "--as", "admin", "--expires", "10m"))
    token = said.splitlines()[1].strip()
    assert f"/console/register?token={token}" in said and "single use" in said
    # the full URL on the console's base URL (default: localhost and the API's port)
    assert f"console: http://localhost:7465/console/register?token={token}" in said
    auth = Authenticator()
    cdj, att = auth.register(operators.registration_challenge(token))
    passkey = await operators.register_passkey(
        ledger, token, client_data_json=cdj, attestation_object=att, origin=ORIGIN, rp_id=RP_ID
    )
    listed = ok(await cli("operator", "passkeys", "bob"))
    assert f"{passkey.id}  {passkey.credential_id[:12]}…" in listed and "current" in listed
    assert passkey.credential_id not in listed and passkey.public_key[:20] not in listed
    ok(
        await cli(
            "operator", "remove-passkey", str(passkey.id), "--reason", "lost", "--as", "admin"
        )
    )
    assert "removed" in ok(await cli("operator", "passkeys", "bob"))
    refused(
        await cli("operator", "remove-passkey", str(passkey.id), "--reason", "x", "--as", "admin"),
        1,
        "removed already",
    )
    events = [(e.kind, e.actor) for e in await ledger.events.recent()]
    assert ("operator_invited", "cli:admin") in events
    assert token not in "".join(e.detail for e in await ledger.events.recent())
