"""The shipped artifacts equal a fresh compile of the sources, and the forge suite passes."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import NODE_MODULES, REPO
from veristream.contracts import load_artifact
from veristream.contracts.artifacts import artifact_names, error_table

FORGE = NODE_MODULES / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"


@pytest.mark.slow
def test_committed_artifacts_match_a_fresh_compile(node: str) -> None:
    result = subprocess.run(
        [node, "infra/compile_contracts.mjs", "--check"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "artifacts match" in result.stdout


def test_artifacts_are_loadable_and_name_every_custom_error() -> None:
    names = artifact_names()
    for required in ("OperatorRegistry", "EpochVerifier", "RewardDistributor", "DeviceRegistry", "RewardToken"):
        assert required in names
        artifact = load_artifact(required)
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 100
        assert json.dumps(artifact["abi"])
    errors = {name for name, _ in error_table().values()}
    for expected in ("InvalidSignature", "QuorumNotMet", "NothingToClaim", "InvalidProofOfPossession",
                     "ReentrancyGuardReentrantCall", "SignerNotInSet", "SubmissionWindowClosed",
                     "AggregateAtInfinity", "NegatedKeyAlreadyUsed", "NotKeyManager"):
        assert expected in errors


@pytest.mark.slow
def test_forge_suite_passes() -> None:
    # forge compiles through infra/solc-wrapper (solc-js) per contracts/foundry.toml
    result = subprocess.run(
        [str(FORGE), "test", "--offline"], cwd=REPO / "contracts", capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "0 failed" in result.stdout
    assert "testFuzz_cumulativeClaimsPayTheDifference" in result.stdout
    # the attack tests ran, each as its own passing test
    for attack in ("InfinityAggregateSignsAnyMessage_bn254", "InfinityAggregateSignsAnyMessage_bls12381",
                   "PopIsCopiedIntoAnotherOperatorsRotateKey", "ActivationDelayIsBelowTheFloorOnAProductionChain",
                   "BeneficiarySwapsDeviceKey", "OwnerRenouncesOwnership", "BeneficiaryBecomesTheDidController",
                   "StrangerAddsVerificationMethodToDeviceDid", "BeneficiaryPublishesSigningKeyBesideTheRegistry",
                   "StrangerPreloadsTheDidOfADeviceNotYetRegistered",
                   "AForgedAggregateIsNotInTheVerifiedRoot", "ThePolicyIsPaidTwice",
                   "TheEpochIsOutsideThePolicyRange", "TheSameResultIsSubmittedAgain",
                   "ClaimAuthorizationIsReplayed", "SignatureIsMalleated", "Erc1271AccountDoesNotApprove",
                   "OneEntryOfTheBatchIsForged", "RecoveryLeavesAJobsPoolOut",
                   "ADisputedQuorumSignsAFalseAggregateAfterThePause", "TheDeadlineLeavesTheHolderNoTimeToClaim"):
        assert f"[PASS] test_RevertWhen_{attack}(" in result.stdout, attack
    assert "[PASS] test_attack_farFutureValidFromFreezesTheList(" in result.stdout
