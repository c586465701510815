"""The job spec: what a DePIN project submits to VeriStream, validated before anything runs.

A job is one YAML file. ``load_job(path)`` parses and validates it with pydantic
(``extra="forbid"`` everywhere, so a misspelt key is an error, not a silent
default) and raises ``JobSpecError`` listing every problem as
``field.path: message``. Paths inside the spec (device registry file, work
directory, replay files) are resolved against the job file's folder, so a job
runs the same from any current directory.

Every numeric rule that feeds the epoch's commitments is an integer: payload
fields are integers in fixed units (e.g. centi-degrees), rewards are in the
token's smallest unit, quantiles are percentages. That keeps re-execution bit
for bit identical across operators (DESIGN.md, deterministic re-execution).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from veristream.connectors.sources.config import SourceConfig
from veristream.provers.credentials import DEVICE_CREDENTIAL, is_did
from veristream.provers.epoch_clock import EpochClock
from veristream.provers.errors import InputRejected, SpecError
from veristream.provers.signers import DEVELOPMENT_CHAIN_IDS, check_signer_spec

JOB_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ADDRESS_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
FIELD_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1


class JobSpecError(SpecError):
    """A job spec that does not validate; ``problems`` holds ``(field.path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"invalid job spec {source}:\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str) -> str:
    if not ADDRESS_PATTERN.match(value):
        raise SpecError("must be a 0x-prefixed 20-byte hex address")
    return value


class Eip712DomainSpec(_Model):
    """The EIP-712 domain devices sign their readings under (see docs/job-spec.md)."""

    name: str = "VeriStream"
    version: str = "1"
    chain_id: int = Field(default=31337, ge=0)
    verifying_contract: str = "0x0000000000000000000000000000000000000000"

    _check_contract = field_validator("verifying_contract")(_address)


CREDENTIAL_TYPES = (DEVICE_CREDENTIAL,)


class CredentialsSpec(_Model):
    """The credentials devices must hold (docs/identity.md): issued by one of ``trusted_issuers``
    (DIDs), of one of ``types``; with ``required`` a device without a valid one is not registered
    and its readings are ``credential_revoked``. ``file``: credentials and status-list versions
    written by the simulator (embedded jobs); ``registry``: the CredentialRegistry they are
    anchored in (a job with ``devices.address``)."""

    trusted_issuers: list[str] = Field(min_length=1)
    types: list[str] = Field(default_factory=lambda: list(CREDENTIAL_TYPES), min_length=1)
    required: bool = True
    file: Path | None = None
    registry: str | None = Field(
        default=None,
        description="the CredentialRegistry on the job's chain (the deployment's credential_registry): "
        "device credentials and status lists are anchored there",
    )

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("trusted_issuers")
    @classmethod
    def _dids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not is_did(v)]
        if bad:
            raise SpecError(f"must be DIDs (did:<method>:<id>), got {bad}")
        return value

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v not in CREDENTIAL_TYPES]
        if bad:
            raise SpecError(f"unknown credential types {bad}: one of {list(CREDENTIAL_TYPES)}")
        return value


class DeviceRegistrySpec(_Model):
    """Where device keys come from, exactly one of a registry file (``file``) or a DeviceRegistry
    on the job's chain (``address``), and the EIP-712 domain devices sign under; ``credentials``:
    the credentials devices hold (absent: none are checked)."""

    file: Path | None = None
    address: str | None = Field(
        default=None,
        description="a DeviceRegistry on the job's chain: the device view is read from its events "
        "(cached in the work directory) and each epoch's manifest names the block it was read at",
    )
    domain: Eip712DomainSpec = Eip712DomainSpec()
    credentials: CredentialsSpec | None = None

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        # checked here rather than on the model so the problem is reported at devices.address
        if info.data.get("file") is not None:
            raise SpecError("give 'file' or 'address', not both: each names where device keys come from")
        return _address(value)

    @model_validator(mode="after")
    def _one_source(self) -> DeviceRegistrySpec:
        if self.file is None and self.address is None:
            raise SpecError("give 'file' (a registry file) or 'address' (a DeviceRegistry on the job's chain)")
        return self


class EpochSpec(_Model):
    """Event-time epochs: ``[genesis + e*length, genesis + (e+1)*length)`` in milliseconds."""

    length_ms: int = Field(gt=0, le=UINT64_MAX)
    allowed_lateness_ms: int = Field(default=0, ge=0, le=UINT64_MAX)
    genesis_ms: int = Field(default=0, ge=0, le=UINT64_MAX)

    def clock(self) -> EpochClock:
        """The epoch grid these settings describe."""
        return EpochClock(self.length_ms, self.allowed_lateness_ms, self.genesis_ms)


class FieldRule(_Model):
    """One integer payload field: whether it must be present and its plausible range (inclusive)."""

    required: bool = True
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FieldRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpecError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ValidationSpec(_Model):
    """Per-reading rules applied after the signature and replay checks."""

    fields: dict[str, FieldRule] = Field(default_factory=dict)
    max_clock_skew_ms: int = Field(default=60_000, ge=0, le=UINT64_MAX)
    max_payload_bytes: int = Field(default=4096, gt=0, le=1 << 24)

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, FieldRule]) -> dict[str, FieldRule]:
        for name in value:
            if not FIELD_NAME_PATTERN.match(name):
                raise SpecError(f"field name {name!r} must be an identifier of at most 64 characters")
        return value


class AggregationSpec(_Model):
    """Per-device statistics of chosen integer fields; quantiles are nearest-rank percentages."""

    fields: list[str] = Field(default_factory=list)
    quantiles: list[int] = Field(default_factory=lambda: [50, 90])

    @field_validator("quantiles")
    @classmethod
    def _percentages(cls, value: list[int]) -> list[int]:
        for q in value:
            if not 1 <= q <= 100:
                raise SpecError(f"quantile {q} must be a whole percentage in 1..100")
        if len(set(value)) != len(value):
            raise SpecError("quantiles must not repeat")
        return sorted(value)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise SpecError("fields must not repeat")
        return value


class RewardSpec(_Model):
    """The reward policy, in the token's smallest unit (see ``veristream.pipeline.rewards``),
    and the token it pays in: an existing ERC-20 (``token``) or the deployment's demo token."""

    tokens_per_epoch: int = Field(ge=0, le=UINT256_MAX)
    max_per_device: int | None = Field(default=None, gt=0, le=UINT256_MAX)
    quality_weight: Literal["completeness", "none"] = "completeness"
    remainder: Literal["carry", "sink"] = "carry"
    sink: str | None = None
    token: str | None = Field(
        default=None,
        description="an existing ERC-20 on the job's chain to pay in (any decimals); absent: the "
        "deployment's demo RewardToken",
    )
    funding: Literal["mint", "transfer", "none"] = Field(
        default="mint",
        description="mint: the signer mints the demo token into the pool (default without 'token'); "
        "transfer: the signer approves and funds the pool from its balance (default with 'token'); "
        "none: somebody else funds the pool",
    )

    @field_validator("sink", "token")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @model_validator(mode="before")
    @classmethod
    def _funding_default(cls, data: Any) -> Any:
        # A foreign token cannot be minted: its default is to pay from the signer's balance.
        if isinstance(data, dict) and data.get("token") is not None and "funding" not in data:
            return {**data, "funding": "transfer"}
        return data

    @field_validator("funding")
    @classmethod
    def _funding_fits_token(cls, value: str, info: ValidationInfo) -> str:
        if value == "mint" and info.data.get("token") is not None:
            raise SpecError(
                "'mint' only funds the deployment's demo token; an existing token (rewards.token) is "
                "funded by 'transfer' (from the signer's balance) or 'none' (by somebody else)"
            )
        return value

    @model_validator(mode="after")
    def _sink_given(self) -> RewardSpec:
        if self.remainder == "sink" and self.sink is None:
            raise SpecError("remainder 'sink' needs a 'sink' address")
        return self


class QuorumSpec(_Model):
    """Signing weight needed: ``signed * denominator >= total * numerator``, a fraction above
    one half (the EpochVerifier's floor: two disjoint signer sets can never both verify)."""

    numerator: int = Field(default=2, gt=0, lt=2**16)
    denominator: int = Field(default=3, gt=0, lt=2**16)

    @model_validator(mode="after")
    def _fraction(self) -> QuorumSpec:
        if self.numerator > self.denominator:
            raise SpecError("numerator must not exceed denominator")
        if 2 * self.numerator <= self.denominator:
            raise SpecError("the quorum must be more than half of the weight (numerator / denominator > 1/2)")
        return self


class OperatorsSpec(_Model):
    """The committee: how many local operators (or their key files), their scheme and quorum."""

    count: int = Field(default=4, gt=0, le=256)
    weights: list[int] | None = None
    scheme: Literal["bls12381", "bn254"] = "bls12381"
    quorum: QuorumSpec = QuorumSpec()
    max_weight_bps: int = Field(
        default=10_000,
        gt=0,
        le=10_000,
        description="the most of the set's weight one operator may hold, in basis points: the "
        "EpochVerifier refuses epochs while any operator of the set holds more (10000: no cap)",
    )
    key_seed: int = Field(
        default=1,
        ge=0,
        description="embedded mode derives operator keys from this seed; never use it on a real chain",
    )
    remote: list[str] = Field(
        default_factory=list,
        description="names of Ray actors started by `veristream operator serve`, serving slots 0, 1, ... "
        "in order; the other slots run as local actors",
    )
    namespace: str = Field(default="veristream", min_length=1, description="Ray namespace of `remote`")
    set_id: int | None = Field(
        default=None,
        ge=1,
        lt=2**32,
        description="an operator set already registered on chain: the committee is read from the "
        "OperatorRegistry (keys, weights, slots) and matched to served operator actors; "
        "count, weights and key_seed are not used",
    )

    @model_validator(mode="after")
    def _remote(self) -> OperatorsSpec:
        if self.set_id is not None:
            if self.weights is not None:
                raise SpecError("weights come from the OperatorRegistry when set_id is given: drop 'weights'")
            if len(set(self.remote)) != len(self.remote) or not all(self.remote):
                raise SpecError("remote operator names must be non-empty and distinct")
            return self
        if len(self.remote) > self.count:
            raise SpecError(f"remote names {len(self.remote)} operators but count is {self.count}")
        if len(set(self.remote)) != len(self.remote) or not all(self.remote):
            raise SpecError("remote operator names must be non-empty and distinct")
        return self

    @model_validator(mode="after")
    def _weights(self) -> OperatorsSpec:
        if self.weights is not None:
            if len(self.weights) != self.count:
                raise SpecError(f"weights has {len(self.weights)} entries for {self.count} operators")
            if any(w <= 0 for w in self.weights):
                raise SpecError("weights must be positive")
        return self


class ChainSpec(_Model):
    """The chain: ``embedded`` (in-process EVM in the work directory) or a JSON-RPC node."""

    mode: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = None
    chain_id: int = Field(default=31337, ge=0)
    deployment: Path | None = Field(
        default=None,
        description="deployment.json of contracts already on the chain (`veristream chain deploy --json`); "
        "needed with operators.set_id",
    )
    max_submission_delay_s: int = Field(
        default=86_400,
        ge=600,
        le=30 * 86_400,
        description="how long after an epoch ends (or after the job is created, for epochs that ended "
        "earlier) the EpochVerifier accepts it; later it is expired for good",
    )
    signer: str | None = Field(
        default=None,
        description="who signs transactions on a JSON-RPC chain: env:NAME (a hex key in that environment "
        "variable), keystore:PATH (an encrypted JSON keystore; password from VERISTREAM_KEYSTORE_PASSWORD "
        "or a prompt) or node (the node's unlocked account: development nodes only)",
    )
    confirmations: int = Field(default=0, ge=0, le=256, description="blocks to wait on a transaction's block")
    max_fee_gwei: int | None = Field(default=None, gt=0, description="cap of a transaction's maxFeePerGas")

    @field_validator("signer")
    @classmethod
    def _signer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_signer_spec(value)
        except InputRejected as exc:
            raise SpecError(str(exc)) from None

    @model_validator(mode="after")
    def _url(self) -> ChainSpec:
        if self.mode == "rpc" and not self.rpc_url:
            raise SpecError("mode 'rpc' needs 'rpc_url'")
        if self.deployment is not None and self.mode != "rpc":
            raise SpecError("'deployment' names contracts on a JSON-RPC chain: set mode 'rpc' and 'rpc_url'")
        if self.signer is not None and self.mode != "rpc":
            raise SpecError("'signer' signs for a JSON-RPC chain: the embedded chain needs none")
        if self.mode == "rpc" and self.signer is None and self.chain_id not in DEVELOPMENT_CHAIN_IDS:
            raise SpecError(
                f"chain {self.chain_id} is not a development chain: set 'signer' (env:NAME or keystore:PATH)"
            )
        return self


class IpfsSpec(_Model):
    """IPFS: ``embedded`` (content-addressed store in the work directory) or an RPC node."""

    mode: Literal["embedded", "rpc"] = "embedded"
    url: str | None = None

    @model_validator(mode="after")
    def _url(self) -> IpfsSpec:
        if self.mode == "rpc" and not self.url:
            raise SpecError("mode 'rpc' needs 'url'")
        return self


class RaySpec(_Model):
    """Ray: ``address: null`` starts a local Ray once per run; otherwise connect to a cluster."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, gt=0)


BEAM_ENVIRONMENTS = ("LOOPBACK", "DOCKER", "PROCESS", "EXTERNAL")
ENDPOINT_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
URL_PATTERN = re.compile(r"^[a-z][a-z0-9+.-]*://")


class BeamSpec(_Model):
    """The Beam runner of the per-epoch bounded pipeline; ``fnapi`` is the embedded one.

    Any other runner gets the epoch's inputs and returns its outputs through files
    under ``staging`` (``veristream.pipeline.beam_portable``); what each runner needs is
    checked here, before anything runs, because Beam itself would otherwise fail
    late (or try to download a job server).
    """

    runner: Literal["fnapi", "portable", "flink", "spark", "dataflow"] = "fnapi"
    # validated even when absent: a runner that needs options must not pass without them
    options: dict[str, str] = Field(default_factory=dict, validate_default=True)
    staging: str | None = Field(
        default=None,
        description="where a non-embedded runner's workers read an epoch's inputs and write its "
        "outputs: an absolute path they all see, or a filesystem URL (gs://...); default "
        "<work_dir>/beam-staging (dataflow: <temp_location>/veristream)",
    )
    readings_per_element: int = Field(default=1000, gt=0, le=1_000_000)
    verify_workers: int | None = Field(
        default=None,
        gt=0,
        le=256,
        description="processes for signature checks of epochs with 20,000+ readings (null: 2 on 2+ cores; 1: in-process)",
    )
    verify_on: Literal["auto", "processes", "ray"] = Field(
        default="auto",
        description="where those checks fan out: Ray tasks or local processes (auto: Ray when ray.address names a cluster)",
    )

    @field_validator("options")
    @classmethod
    def _runner_options(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        runner = info.data.get("runner")
        if runner is None or runner == "fnapi":
            return value
        problem = _runner_options_problem(runner, value)
        if problem is not None:
            raise SpecError(problem)
        return value

    @field_validator("staging")
    @classmethod
    def _staging(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not (URL_PATTERN.match(value) or Path(value).is_absolute()):
            raise SpecError(
                f"{value!r} must be an absolute path or a filesystem URL: every worker of the "
                "runner resolves it, each from its own working directory"
            )
        if info.data.get("runner") == "dataflow" and not value.startswith("gs://"):
            raise SpecError(f"{value!r}: Dataflow workers can only reach a gs:// location")
        return value


_JOB_SERVER_WHY = (
    "without it Beam downloads the {name} job-server jar from Maven Central and starts it "
    "with Java, which VeriStream does not do; start the {name} job server yourself and give "
    "its HOST:PORT (docs/job-spec.md)"
)


def _runner_options_problem(runner: str, options: dict[str, str]) -> str | None:
    """Why ``options`` cannot drive ``runner``, naming the option; None when they can."""
    if "runner" in options:
        return "'runner' is set by beam.runner, not in beam.options"
    if runner in ("portable", "flink", "spark"):
        endpoint = options.get("job_endpoint")
        if not endpoint:
            if runner == "portable":
                return "'job_endpoint' is required for runner 'portable' (the job service's HOST:PORT)"
            return f"'job_endpoint' is required for runner {runner!r}: " + _JOB_SERVER_WHY.format(
                name=runner.capitalize()
            )
        if not (ENDPOINT_PATTERN.match(endpoint) or (runner == "portable" and endpoint == "embed")):
            return f"'job_endpoint' {endpoint!r} must be HOST:PORT"
        environment = options.get("environment_type")
        if environment is not None and not (
            environment in BEAM_ENVIRONMENTS or environment.startswith("beam:env:")
        ):
            return (
                f"'environment_type' {environment!r} must be one of {', '.join(BEAM_ENVIRONMENTS)} "
                "(or a beam:env: URN)"
            )
    if runner == "dataflow":
        for key in ("project", "region", "temp_location"):
            if not options.get(key):
                return f"{key!r} is required for runner 'dataflow'"
        if not options["temp_location"].startswith("gs://"):
            return f"'temp_location' {options['temp_location']!r} must be a gs:// location for Dataflow"
    return None


class JobSpec(_Model):
    """A VeriStream job: sources, rules, policy and where every part runs."""

    job_id: str
    description: str = ""
    sources: list[SourceConfig] = Field(default_factory=list)
    devices: DeviceRegistrySpec
    epochs: EpochSpec
    validation: ValidationSpec = ValidationSpec()
    aggregation: AggregationSpec = AggregationSpec()
    rewards: RewardSpec
    operators: OperatorsSpec = OperatorsSpec()
    chain: ChainSpec = ChainSpec()
    ipfs: IpfsSpec = IpfsSpec()
    ray: RaySpec = RaySpec()
    beam: BeamSpec = BeamSpec()
    work_dir: Path = Path(".veristream")

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str) -> str:
        if not JOB_ID_PATTERN.match(value):
            raise SpecError(
                "must be 1-64 characters of lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        for index, source in enumerate(value):
            if isinstance(source, dict) and "type" not in source:
                raise SpecError(f"source {index} has no 'type'")
        return [_validate_source(index, source) for index, source in enumerate(value)]

    @model_validator(mode="before")
    @classmethod
    def _sources_default_from_validation(cls, data: Any) -> Any:
        # A source's payload limit is the job's unless the source names one (checked below).
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            return data
        validation = data.get("validation")
        limit = validation.get("max_payload_bytes") if isinstance(validation, dict) else None
        if limit is None:
            return data
        sources = [
            {"max_payload_bytes": limit, **source}
            if isinstance(source, dict) and source.get("type") in _LISTENING
            else source
            for source in data["sources"]
        ]
        return {**data, "sources": sources}

    @model_validator(mode="after")
    def _sources_agree_with_validation(self) -> JobSpec:
        for index, source in enumerate(self.sources):
            if source.type not in _LISTENING:
                continue  # replays and simulators produce data; the log judges it
            if source.max_payload_bytes != self.validation.max_payload_bytes:
                raise SpecError(
                    f"source {index} ({source.type}): max_payload_bytes {source.max_payload_bytes} "
                    f"contradicts validation.max_payload_bytes {self.validation.max_payload_bytes}"
                )
        return self

    @model_validator(mode="after")
    def _registry_needs_a_deployed_chain(self) -> JobSpec:
        if self.operators.set_id is not None and self.chain.deployment is None:
            raise SpecError(
                "operators.set_id reads an existing OperatorRegistry: give chain.mode 'rpc', chain.rpc_url "
                "and chain.deployment (the contracts' deployment.json)"
            )
        return self

    @model_validator(mode="after")
    def _aggregated_fields_are_known(self) -> JobSpec:
        unknown = [f for f in self.aggregation.fields if f not in self.validation.fields]
        if unknown:
            raise SpecError(
                f"aggregation.fields {unknown} are not declared in validation.fields "
                "(aggregates are over declared integer fields only)"
            )
        return self

    def resolve(self, base: Path) -> JobSpec:
        """This spec with relative paths made absolute against ``base`` (the job file's folder)."""
        devices = self.devices
        if devices.file is not None and not devices.file.is_absolute():
            devices = devices.model_copy(update={"file": (base / devices.file).resolve()})
        creds = devices.credentials
        if creds is not None and creds.file is not None and not creds.file.is_absolute():
            creds = creds.model_copy(update={"file": (base / creds.file).resolve()})
            devices = devices.model_copy(update={"credentials": creds})
        work_dir = self.work_dir if self.work_dir.is_absolute() else (base / self.work_dir).resolve()
        sources = [_resolve_source_paths(s, base) for s in self.sources]
        chain = self.chain
        if chain.deployment is not None and not chain.deployment.is_absolute():
            chain = chain.model_copy(update={"deployment": (base / chain.deployment).resolve()})
        return self.model_copy(
            update={"devices": devices, "work_dir": work_dir, "sources": sources, "chain": chain}
        )


def _validate_source(index: int, source: Any) -> Any:
    """One source as its connector's config model, with the error naming the source."""
    if not isinstance(source, dict):
        return source
    try:
        return _SOURCE_ADAPTER.validate_python(source)
    except ValidationError as error:
        detail = "; ".join(f"{path}: {message}" for path, message in _problems(error))
        raise SpecError(f"source {index} ({source.get('type')}): {detail}") from None


_LISTENING = ("http", "websocket", "mqtt")
"""Sources that take messages from devices into the log; their limits follow ``validation``."""

_PATH_KEYS = ("path", "registry", "registry_file", "output", "ground_truth", "directory")


_NESTED_PATH_KEYS = {
    "auth": ("tokens_file",),
    "tls": ("ca_file", "cert_file", "key_file", "client_ca_file"),
}
"""Paths inside a source's nested settings (tokens, certificates), resolved like the top-level ones."""


def _resolve_source_paths(source: SourceConfig, base: Path) -> SourceConfig:
    update: dict[str, Any] = {}
    for key in _PATH_KEYS:
        value = getattr(source, key, None)
        if isinstance(value, str | Path) and str(value) and "://" not in str(value) and not Path(value).is_absolute():
            resolved = (base / value).resolve()
            update[key] = resolved if isinstance(value, Path) else str(resolved)
    for section, keys in _NESTED_PATH_KEYS.items():
        settings = getattr(source, section, None)
        if settings is None:
            continue
        paths = {
            key: (base / value).resolve()
            for key in keys
            if isinstance(value := getattr(settings, key, None), Path) and not value.is_absolute()
        }
        if paths:
            update[section] = settings.model_copy(update=paths)
    return source.model_copy(update=update) if update else source


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append((path, message))
    return problems


def parse_job(data: Any, source: str = "<job>", base: Path | None = None) -> JobSpec:
    """Validate an already-parsed job mapping; ``JobSpecError`` lists every problem."""
    if not isinstance(data, dict):
        raise JobSpecError(source, [("(top level)", "a job spec must be a mapping of keys")])
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as error:
        raise JobSpecError(source, _problems(error)) from None
    return job.resolve(base if base is not None else Path.cwd())


def load_job(path: str | Path) -> JobSpec:
    """Read and validate the job spec at ``path``; relative paths resolve beside the file."""
    job_path = Path(path)
    try:
        text = job_path.read_text(encoding="utf-8")
    except OSError as error:
        raise JobSpecError(str(job_path), [("(file)", f"cannot read: {error.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise JobSpecError(str(job_path), [(where, f"not valid YAML: {error}")]) from None
    return parse_job(data, str(job_path), job_path.resolve().parent)


_SOURCE_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)
