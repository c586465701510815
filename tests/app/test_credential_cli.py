"""``veristream credential keygen|issue|verify`` as a manufacturer and a verifier use them, with
the reference library on the other end of each credential."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.provers.test_credentials_reference import reference
from veristream.cli import app, exit_code
from veristream.provers.errors import VeriStreamError

FIRMWARE = "0x" + "ab" * 32
SUBJECT = "did:ethr:0x7a69:0x00000000000000000000000000000000000000aa"


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> tuple[int, str]:
    """Invoke the CLI in-process as ``entry()`` would: a VeriStream error is its exit code."""
    result = CliRunner(env={"COLUMNS": "300", **(env or {})}).invoke(app, list(args), input=stdin)
    if isinstance(result.exception, VeriStreamError):
        return exit_code(result.exception), str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def issue_args(key: str, *extra: str) -> list[str]:
    return [
        "credential", "issue", "--issuer-key", key, "--subject", SUBJECT, "--type", "DeviceCredential",
        "--model", "WX-1", "--serial", "SN-0042", "--firmware-hash", FIRMWARE, *extra,
    ]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    out = {}
    for scheme in ("ed25519", "p256"):
        path = folder / f"{scheme}.json"
        code, text = cli("credential", "keygen", "--scheme", scheme, "--out", str(path), "--json")
        assert code == 0, text
        public = json.loads(text)
        assert public["did"].startswith("did:key:z6Mk" if scheme == "ed25519" else "did:key:zDn")
        assert "secret" not in text.lower() and json.loads(path.read_text())["secretKeyMultibase"] not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        out[scheme] = path
    return out


def test_keygen_never_overwrites_and_checks_its_scheme(keys: dict[str, Path], tmp_path: Path) -> None:
    before = keys["ed25519"].read_text()
    code, text = cli("credential", "keygen", "--out", str(keys["ed25519"]))
    assert code == 2 and "never overwritten" in text
    assert keys["ed25519"].read_text() == before
    code, text = cli("credential", "keygen", "--scheme", "secp256k1", "--out", str(tmp_path / "k.json"))
    assert code == 2 and "ed25519, p256" in text
    code, text = cli("credential", "keygen", "--out", str(tmp_path / "plain.json"))
    assert code == 0 and text.strip().startswith("did:key:z6Mk")


def test_issue_and_verify_round_trip_with_exit_codes(keys: dict[str, Path], tmp_path: Path) -> None:
    for scheme, key in keys.items():
        out = tmp_path / f"{scheme}.vc.json"
        code, text = cli(*issue_args(str(key), "--valid-until", "2036-01-01T00:00:00Z", "--out", str(out)))
        assert code == 0 and str(out) in text
        credential = json.loads(out.read_text())
        assert credential["credentialSubject"]["serial"] == "SN-0042"
        code, text = cli("credential", "verify", str(out))
        assert code == 0 and text.startswith("verified: DeviceCredential issued by did:key:"), text
        code, text = cli("credential", "verify", str(out), "--json", "--now", "2037-01-01T00:00:00Z")
        verdict = json.loads(text)
        assert code == 1 and verdict["verified"] is False and verdict["reason"] == "expired"
        forged = tmp_path / f"{scheme}.forged.json"
        forged.write_text(out.read_text().replace("SN-0042", "SN-0043"))
        code, text = cli("credential", "verify", str(forged))
        assert code == 1 and text.startswith("not verified (bad_signature): ")
        code, text = cli("credential", "verify", "-", stdin=out.read_text())
        assert code == 0, text


def test_issuer_key_from_the_environment_and_raw_keys_refused(keys: dict[str, Path]) -> None:
    secret = json.loads(keys["p256"].read_text())["secretKeyMultibase"]
    code, text = cli(*issue_args("env:ISSUER_KEY"), env={"ISSUER_KEY": secret})
    assert code == 0 and json.loads(text)["proof"]["cryptosuite"] == "ecdsa-rdfc-2019"
    code, text = cli(*issue_args(secret))
    assert code == 2 and "must not be written on the command line" in text and secret not in text
    code, text = cli(*issue_args("env:NOT_SET_ANYWHERE"))
    assert code == 2 and "not set" in text
    code, text = cli(*issue_args("file:/nonexistent/key.json"))
    assert code == 3


def test_bad_input_is_one_line_exit_2(keys: dict[str, Path], tmp_path: Path) -> None:
    key = str(keys["ed25519"])
    for args, message in [
        (["--valid-until", "2036-01-01"], "--valid-until must be a date-time"),
        (["--valid-until", "2036-02-30T00:00:00Z"], "not a date VeriStream can compare"),
        (["--type", "OtherCredential"], "--type must be one of DeviceCredential"),
    ]:
        code, text = cli(*issue_args(key, *args))
        assert code == 2 and message in text, text
    code, text = cli(*[a if a != FIRMWARE else "0x1234" for a in issue_args(key)])
    assert code == 2 and "firmwareHash" in text
    code, text = cli(*[a if a != SUBJECT else "device-7" for a in issue_args(key)])
    assert code == 2 and "--subject" in text
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    assert cli("credential", "verify", str(not_json))[0] == 2
    assert cli("credential", "verify", str(tmp_path / "missing.json"))[0] == 3
    code, text = cli("credential", "verify", str(not_json), "--now", "yesterday")
    assert code == 2 and "--now" in text


def test_cli_credentials_and_the_reference_library_verify_each_other(node: str, keys: dict[str, Path], tmp_path: Path) -> None:
    ours = []
    for key in keys.values():
        code, text = cli(*issue_args(str(key)))
        assert code == 0
        ours.append(json.loads(text))
    plain: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "credentialSubject": {"id": "did:example:abc", "name": "not a device"},
    }
    out = reference(node, {
        "verify": [{"credential": c} for c in ours],
        "issueNew": [{"scheme": "ed25519", "credential": plain}, {"scheme": "p256", "credential": plain}],
    })
    assert [v["value"]["verified"] for v in out["verify"]] == [True, True], out["verify"]
    for index, answer in enumerate(out["issueNew"]):
        path = tmp_path / f"theirs-{index}.json"
        path.write_text(json.dumps(answer["value"]["credential"]))
        code, text = cli("credential", "verify", str(path), "--json")
        verdict = json.loads(text)
        assert code == 0 and verdict["verified"] and verdict["type"] == ["VerifiableCredential"], verdict
