"""CredentialRegistry on the embedded EVM through its binding: deployed with the set, a stranger
cannot publish an issuer's list, a rollback or a far-future ``validFrom`` is refused, the history
carries each version's block time, and only the DeviceRegistry's owner or managers record a
device's credential."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    connect,
    deploy_all,
    register_device,
    set_manager,
)
from veristream.contracts.credential_registry import (
    anchor_device_credential,
    current_status_list,
    device_credential,
    publish_status_list,
    publisher_of,
    set_publisher,
    status_list_history,
)
from veristream.contracts.deploy import load_deployment
from veristream.provers.encoding import keccak256

ISSUER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
LIST = "https://issuer.example/status/1"
DEVICE = "0x" + "d1" * 20


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Chain, Deployment]]:
    chain = connect(None)
    dep = deploy_all(chain, dev=True)
    yield chain, dep
    chain.close()


def test_deployed_with_the_set_and_found_again(chain: tuple[Chain, Deployment]) -> None:
    _node, dep = chain
    assert dep.credential_registry is not None
    saved = Deployment.from_json(dep.to_json())
    assert saved == dep
    # a deployment.json written before the CredentialRegistry still loads
    older = Deployment.from_json(dep.to_json().replace('"credential_registry"', '"unused"'))
    assert older.credential_registry is None


def test_attack_a_stranger_publishes_a_list_for_an_issuer(chain: tuple[Chain, Deployment]) -> None:
    node, dep = chain
    publisher, stranger = node.accounts[1], node.accounts[2]
    set_publisher(node, dep, ISSUER, publisher)
    assert publisher_of(node, dep, ISSUER) == publisher
    with pytest.raises(ContractRevert) as refused:
        publish_status_list(node, dep, ISSUER, LIST, "bafyForged", 100, sender=stranger)
    assert refused.value.error == "NotIssuerPublisher"
    with pytest.raises(ContractRevert) as not_owner:
        set_publisher(node, dep, ISSUER, stranger, sender=stranger)
    assert not_owner.value.error == "OwnableUnauthorizedAccount"


def test_attack_a_rollback_to_an_older_list_is_refused(chain: tuple[Chain, Deployment]) -> None:
    node, dep = chain
    publisher = node.accounts[1]
    set_publisher(node, dep, ISSUER, publisher)
    url = LIST + "/rollback"
    publish_status_list(node, dep, ISSUER, url, "bafyOld", 1_000, sender=publisher)
    node.advance_time(60)
    publish_status_list(node, dep, ISSUER, url, "bafyRevoked", 2_000, sender=publisher)
    with pytest.raises(ContractRevert) as refused:
        publish_status_list(node, dep, ISSUER, url, "bafyOld", 1_000, sender=publisher)
    assert refused.value.error == "StaleStatusList"
    current = current_status_list(node, dep, ISSUER, url)
    assert current is not None and (current.cid, current.valid_from, current.version) == ("bafyRevoked", 2_000, 2)
    history = status_list_history(node, dep, ISSUER, url)
    assert [v.cid for v in history] == ["bafyOld", "bafyRevoked"]
    assert history[1].anchored_at - history[0].anchored_at >= 60
    assert history[1].anchored_at == current.anchored_at
    assert current_status_list(node, dep, "did:key:other", url) is None


def test_attack_a_far_future_valid_from_would_freeze_the_list(chain: tuple[Chain, Deployment]) -> None:
    node, dep = chain
    publisher = node.accounts[1]
    set_publisher(node, dep, ISSUER, publisher)
    url = LIST + "/millis"
    now = node.timestamp()
    with pytest.raises(ContractRevert) as refused:
        publish_status_list(node, dep, ISSUER, url, "bafyMillis", now * 1000, sender=publisher)
    assert refused.value.error == "ValidFromTooFarAhead"
    assert current_status_list(node, dep, ISSUER, url) is None
    publish_status_list(node, dep, ISSUER, url, "bafySeconds", now, sender=publisher)
    current = current_status_list(node, dep, ISSUER, url)
    assert current is not None and current.valid_from == now


def test_device_credentials_are_recorded_by_the_device_registrys_managers(chain: tuple[Chain, Deployment]) -> None:
    node, dep = chain
    manager = node.accounts[3]
    register_device(node, dep, DEVICE, node.accounts[4])
    digest = keccak256(b"credential")
    with pytest.raises(ContractRevert) as refused:
        anchor_device_credential(node, dep, DEVICE, digest, "bafyVc", sender=manager)
    assert refused.value.error == "NotDeviceManager"
    set_manager(node, dep, manager)
    anchor_device_credential(node, dep, DEVICE, digest, "bafyVc", sender=manager)
    anchor = device_credential(node, dep, DEVICE)
    assert anchor is not None and (anchor.credential_hash, anchor.cid) == (digest, "bafyVc")
    with pytest.raises(ContractRevert) as unknown:
        anchor_device_credential(node, dep, "0x" + "d2" * 20, digest, "bafyVc")
    assert unknown.value.error == "UnknownDevice"
    assert device_credential(node, dep, "0x" + "d3" * 20) is None


def test_load_deployment_checks_the_credential_registrys_code(tmp_path: Path) -> None:
    node = connect(tmp_path)
    try:
        dep = deploy_all(node, dev=True)
        assert load_deployment(node, None) == dep
    finally:
        node.close()
