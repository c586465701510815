"""The ``veristream`` command line.

Each command lives in the module that owns its work and is imported only when
it runs, so ``--help`` and the proof-core commands never load Beam, Ray or web3.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from veristream import __version__

# -h as well as --help, on every command (click hands the setting down to subcommands)
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="veristream",
    help="Verifiable off-chain compute for DePIN data streams.",
    no_args_is_help=True,
    add_completion=False,
    context_settings=HELP_OPTIONS,
)

# Exit codes (docs/cli.md): every command exits with one of these.
EXIT_OK = 0
EXIT_MISMATCH = 1  # a verification ran and found the data disagreeing with its commitment
EXIT_USAGE = 2  # bad usage, a bad job spec or input
EXIT_NOT_FOUND = 3  # not verified, not found, nothing to do
EXIT_UNREACHABLE = 4  # a chain node, IPFS node or server does not answer

_debug = {"on": False}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error (also: VERISTREAM_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print VeriStream's version and exit."
    ),
) -> None:
    """Verifiable off-chain compute for DePIN data streams."""
    _debug["on"] = debug


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error a command reports in one line (docs/cli.md)."""
    from veristream.contracts.artifacts import ContractRevert
    from veristream.provers.errors import ChainError, Mismatch, ServiceUnreachable, StoreError

    if isinstance(exc, Mismatch):
        return EXIT_MISMATCH
    if isinstance(exc, LookupError):  # NotFound, a CID the store lacks
        return EXIT_NOT_FOUND
    if isinstance(exc, ContractRevert):  # the chain answered, and refused: the request was wrong
        return EXIT_USAGE
    if isinstance(exc, ChainError | StoreError | ServiceUnreachable):
        return EXIT_UNREACHABLE
    return EXIT_USAGE


def entry() -> None:
    """The ``veristream`` executable: the CLI, with any VeriStream error as one line and its
    documented exit code (``exit_code``); the traceback only with ``--debug`` or
    ``VERISTREAM_DEBUG=1``."""
    import os
    import sys

    from veristream.provers.errors import VeriStreamError

    try:
        app()
    except VeriStreamError as exc:
        if _debug["on"] or os.environ.get("VERISTREAM_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exit_code(exc))


@app.command()
def version() -> None:
    """Print VeriStream's version."""
    typer.echo(__version__)


@app.command()
def simulate(
    seed: int = typer.Option(0, help="Seed: same seed and start time, same keys and bytes."),
    devices: int = typer.Option(3, help="Devices per scheme."),
    schemes: str = typer.Option("secp256k1,ed25519,p256", help="Comma-separated schemes."),
    profile: str = typer.Option(
        "mixed", help="weather-station, air-quality, gps-coverage or mixed."
    ),
    count: int = typer.Option(300, help="Good readings to send (faults come on top)."),
    rate: float = typer.Option(
        100.0, help="Readings per second (timestamps; pacing with --realtime)."
    ),
    start_ms: int | None = typer.Option(
        None,
        help="Timestamp of the first reading (default: now for live targets, 2026-01-01 for files).",
    ),
    faults: str = typer.Option("", help="Comma-separated faults to inject; see --all-faults."),
    all_faults: bool = typer.Option(False, help="Inject every fault the simulator knows."),
    fault_rate: float = typer.Option(
        0.02, help="Messages per fault, as a fraction of --count (at least 1)."
    ),
    to: str = typer.Option("file", help="file, http, ws or mqtt."),
    output: str | None = typer.Option(None, help="JSON-lines file for --to file."),
    url: str | None = typer.Option(
        None, help="Base URL for http (http://host:port) or ws (ws://host:port/v1/stream)."
    ),
    mqtt_host: str = typer.Option("127.0.0.1", help="MQTT broker host."),
    mqtt_port: int = typer.Option(1883, help="MQTT broker port."),
    topic_prefix: str = typer.Option(
        "veristream/readings", help="MQTT topic prefix (device id appended)."
    ),
    username: str | None = typer.Option(None, help="MQTT username."),
    password: str | None = typer.Option(None, help="MQTT password."),
    ca_file: str | None = typer.Option(None, help="CA certificate: MQTT over TLS."),
    transport: str = typer.Option("tcp", help="MQTT transport: tcp or websockets."),
    batch_size: int = typer.Option(1, help="HTTP: envelopes per request (NDJSON when > 1)."),
    realtime: bool = typer.Option(
        False, help="Pace messages at --rate instead of sending as fast as possible."
    ),
    registry: str | None = typer.Option(None, help="Write the device registry (JSON) here."),
    truth: str | None = typer.Option(
        None, help="Write the ground truth (JSON lines + .summary.json) here."
    ),
) -> None:
    """Simulate a device fleet with fault injection; send to a file, HTTP, WebSocket or MQTT."""
    import json
    import time
    from pathlib import Path

    import httpx

    from veristream.connectors.simulator import deliver
    from veristream.connectors.simulator import simulate as run
    from veristream.connectors.sources import config as cfg
    from veristream.provers.errors import ServiceUnreachable

    try:
        sim_config = cfg.SimulatorSourceConfig(
            seed=seed,
            devices_per_scheme=devices,
            schemes=[s.strip() for s in schemes.split(",") if s.strip()],
            profile=profile,
            count=count,
            rate=rate,
            start_ms=start_ms,
            faults=list(cfg.FAULTS) if all_faults else [f for f in faults.split(",") if f],
            fault_rate=fault_rate,
        )
        live_start = None if start_ms is not None or to == "file" else time.time_ns() // 1_000_000
        simulation = run(sim_config, start_ms=live_start)
        simulation.write(Path(registry) if registry else None, Path(truth) if truth else None)
        mqtt_config = None
        if to == "mqtt":
            tls = cfg.TlsConfig(ca_file=Path(ca_file)) if ca_file else None
            mqtt_config = cfg.MqttSourceConfig(
                host=mqtt_host,
                port=mqtt_port,
                username=username,
                password=password,
                tls=tls,
                transport=transport,
            )
        report = deliver(
            simulation,
            to,
            output=Path(output) if output else None,
            url=url,
            mqtt_config=mqtt_config,
            topic_prefix=topic_prefix,
            realtime=realtime,
            batch_size=batch_size,
        )
    except ValueError as error:  # pydantic's ValidationError is a ValueError too
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except (OSError, httpx.TransportError) as error:
        target = url if to in ("http", "ws") else f"{mqtt_host}:{mqtt_port}"
        raise ServiceUnreachable(
            f"simulate --to {to}: {target} does not answer ({type(error).__name__}: {error}); start the "
            "server first (veristream ingest JOB) or fix --url"
        ) from None
    report.pop("rejected", None)
    typer.echo(json.dumps({"summary": simulation.summary(), "delivery": report}, sort_keys=True))


@app.command()
def ingest(
    job_file: str = typer.Argument(..., help="Job spec (YAML) whose live sources to serve."),
    duration_s: float | None = typer.Option(None, "--duration", min=0.001, help="Stop after SECONDS."),
    wall_clock: bool = typer.Option(
        True, help="Advance the watermark with the wall clock, so idle epochs close."
    ),
    status_every: float = typer.Option(
        5.0, "--status-every", min=0.1, help="Print a status line on stderr every SECONDS."
    ),
) -> None:
    """Serve a job's live sources (MQTT, HTTP, WebSocket, file) into its ingest log until stopped.

    A status line every few seconds (received, accepted, rejected, open epochs, rate), a
    summary when stopped (Ctrl-C, SIGTERM, --duration), the log's counts as JSON on stdout.
    `veristream process JOB` verifies the epochs in another process.
    """
    from veristream.commands import ingest_command

    raise typer.Exit(ingest_command(job_file, duration_s, wall_clock, status_every))


@app.command()
def process(
    job: str = typer.Argument(..., help="The job spec (YAML) whose sources `veristream ingest` serves."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    ray: bool = typer.Option(True, help="Run the operators as Ray actors (--no-ray: in this process)."),
    chain: bool = typer.Option(True, help="Submit verified epochs on chain (--no-chain: stop at the committee)."),
    epochs: int | None = typer.Option(None, min=1, help="Stop after this many epochs are verified."),
    duration: float | None = typer.Option(None, min=0.001, help="Stop after SECONDS."),
) -> None:
    """Verify a live job's epochs as they close while `veristream ingest JOB` serves its sources
    in another process: pipeline, committee, chain; until --epochs, --duration or Ctrl-C."""
    from veristream.commands import process_command

    raise typer.Exit(process_command(job, json_out, ray, chain, epochs, duration))


@app.command("ingest-repair")
def ingest_repair(
    target: str = typer.Argument(
        ..., help="Job spec (YAML; its <work_dir>/ingest) or an ingest log directory."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Set damaged parts of an ingest log aside (quarantine/, nothing deleted) and report the loss."""
    from veristream.commands import repair_command

    raise typer.Exit(repair_command(target, as_json))


ipfs_app = typer.Typer(
    help="IPFS storage: CIDs as kubo computes them, an embedded store, an RPC node, CAR files.",
    no_args_is_help=True,
)
app.add_typer(ipfs_app, name="ipfs")

_IPFS_STORE = typer.Option(None, "--store", help="Embedded store directory.")
_IPFS_API = typer.Option(None, "--api", help="IPFS RPC API url, e.g. http://127.0.0.1:5001 (kubo).")
_IPFS_JOB = typer.Option(None, "--job", help="A job spec (YAML): use its store (ipfs.url or WORK_DIR/ipfs).")


def _ipfs_backend(store: str | None, api: str | None, job: str | None = None, *, read_only: bool = False) -> Any:
    """The store named by exactly one of --store, --api and --job (``read_only``: opened without writing)."""
    from veristream.connectors.ipfs import EmbeddedStore, RpcStore, open_store
    from veristream.pipeline.jobspec import load_job
    from veristream.provers.errors import SpecError

    if sum(x is not None for x in (store, api, job)) != 1:
        raise SpecError("name the store: give one of --store DIR, --api URL or --job JOB")
    if api:
        return RpcStore(api)
    if job:
        spec = load_job(job)
        return open_store(spec.ipfs, spec.work_dir, read_only=read_only)
    return EmbeddedStore(str(store), read_only=read_only)


@ipfs_app.command("cid")
def ipfs_cid(
    path: str = typer.Argument(..., help="File to hash."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print the CID `ipfs add --cid-version=1` would give FILE, storing nothing."""
    import json
    from pathlib import Path

    from veristream.connectors.ipfs import cid_of

    cid = cid_of(Path(path).read_bytes())
    typer.echo(json.dumps({"path": path, "cid": cid}) if json_out else cid)


@ipfs_app.command("put")
def ipfs_put(
    path: str = typer.Argument(..., help="File to store."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
    job: str | None = _IPFS_JOB,
) -> None:
    """Store FILE (pinned) in the embedded store or on an RPC node; print its CID."""
    from pathlib import Path

    typer.echo(_ipfs_backend(store, api, job).put(Path(path).read_bytes()))


@ipfs_app.command("get")
def ipfs_get(
    cid: str = typer.Argument(..., help="CID of the file."),
    out: str = typer.Option("-", "--out", "-o", help="Output file ('-' for stdout)."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
    job: str | None = _IPFS_JOB,
) -> None:
    """Fetch a file by CID, re-hashing every block, and write it out (the store is only read)."""
    import sys
    from pathlib import Path

    data = _ipfs_backend(store, api, job, read_only=True).get(cid)
    if out == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(out).write_bytes(data)


@ipfs_app.command("export-car")
def ipfs_export_car(
    cid: str = typer.Argument(..., help="Root CID."),
    out: str = typer.Argument(..., help="CAR file to write."),
    store: str | None = _IPFS_STORE,
    job: str | None = _IPFS_JOB,
) -> None:
    """Export the DAG under CID from an embedded store as a CARv1 (for `ipfs dag import`)."""
    _ipfs_backend(store, None, job, read_only=True).export_car(cid, out)


@ipfs_app.command("import-car")
def ipfs_import_car(
    path: str = typer.Argument(..., help="CARv1 file."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
    job: str | None = _IPFS_JOB,
) -> None:
    """Import a CARv1 (every block verified) into the embedded store or an RPC node; print its roots."""
    for root in _ipfs_backend(store, api, job).import_car(path):
        typer.echo(root)


merkle_app = typer.Typer(
    help="OpenZeppelin-compatible Merkle trees: build, prove, verify.", no_args_is_help=True
)
app.add_typer(merkle_app, name="merkle")


@merkle_app.command("build")
def merkle_build(
    rows: str = typer.Argument(..., help='JSON file: a list of rows, or {"values": [...], "encoding": [...]}.'),
    encoding: str | None = typer.Option(None, help="Comma-separated ABI types, e.g. address,uint256."),
    out: str | None = typer.Option(None, "--out", "-o", help="Write the standard-v1 dump here."),
    sort_leaves: bool = typer.Option(True, help="Sort leaves by hash (OpenZeppelin's default)."),
) -> None:
    """Build a StandardMerkleTree from JSON rows; print its root, optionally write the dump."""
    import json
    from pathlib import Path

    from veristream.provers.merkle import StandardMerkleTree

    data = json.loads(Path(rows).read_text())
    values = data["values"] if isinstance(data, dict) else data
    types = encoding.split(",") if encoding else (data.get("encoding") if isinstance(data, dict) else None)
    if not types:
        raise typer.BadParameter("give --encoding or an 'encoding' list in the file")
    try:
        tree = StandardMerkleTree.of(values, types, sort_leaves=sort_leaves)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if out:
        Path(out).write_text(json.dumps(tree.dump()))
    typer.echo(tree.root)


@merkle_app.command("proof")
def merkle_proof(
    dump: str = typer.Argument(..., help="standard-v1 dump (JSON file)."),
    index: int = typer.Argument(..., help="Row index."),
) -> None:
    """Print the proof of one row of a dumped tree as JSON (value, leaf, proof, root)."""
    import json
    from pathlib import Path

    from veristream.provers.merkle import StandardMerkleTree

    try:
        tree = StandardMerkleTree.load(json.loads(Path(dump).read_text()))
        value = tree.at(index)
        proof = tree.get_proof(index)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps({"value": value, "leaf": tree.leaf_hash(value), "proof": proof, "root": tree.root}))


@merkle_app.command("verify")
def merkle_verify(
    root: str = typer.Argument(..., help="Root, 0x-hex."),
    encoding: str = typer.Argument(..., help="Comma-separated ABI types."),
    value: str = typer.Argument(..., help="The row as JSON, e.g. '[\"0x11...\", \"5000\"]'."),
    proof: str = typer.Argument(..., help="The proof as a JSON list of 0x-hex nodes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a proof against a root; exit 1 when it does not verify."""
    import json

    from veristream.provers.merkle import verify_proof

    try:
        ok = verify_proof(root, encoding.split(","), json.loads(value), json.loads(proof))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps({"valid": ok, "root": root}) if json_out else "valid" if ok else "invalid")
    raise typer.Exit(0 if ok else 1)


@app.command()
def run(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    ray: bool = typer.Option(True, help="Run the operators as Ray actors (--no-ray: in this process)."),
    chain: bool = typer.Option(True, help="Submit verified epochs on chain (--no-chain: stop at the committee)."),
    ray_address: str | None = typer.Option(None, help="A Ray cluster to run the operators on."),
    operator_fault: Annotated[
        list[str] | None,
        typer.Option(help="Demo: make operator SLOT misbehave, SLOT:wrong_root|bad_signature|down (repeatable)."),
    ] = None,
    epochs: int | None = typer.Option(
        None, min=1, help="Live sources: stop after this many epochs are verified (default: until SIGINT/SIGTERM)."
    ),
    duration: float | None = typer.Option(None, min=0.001, help="Live sources: stop accepting after SECONDS."),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics."
    ),
) -> None:
    """Run a job end to end: sources, epochs through Beam, IPFS, operator committee, chain, a claim.

    Bounded sources (simulator, file) are replayed to the end. Live sources
    (mqtt, http, websocket) are served until --epochs, --duration or
    SIGINT/SIGTERM, each epoch verified as soon as it closes; a rerun resumes.
    """
    from veristream.commands import run_command

    raise typer.Exit(
        run_command(job, json_out, ray, chain, ray_address, operator_fault, epochs, duration, metrics_port)
    )


@app.command()
def verify(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    epoch: int = typer.Argument(..., help="The epoch to recompute."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    batch_cid: str | None = typer.Option(
        None, help="Recompute this batch instead of the chain's (passes only if it is the chain's)."
    ),
    deployment: str | None = typer.Option(
        None, help="The contracts' deployment.json (default: the one beside the job's embedded chain)."
    ),
) -> None:
    """Recompute one epoch from the chain and IPFS alone (no local checkpoints); exit 0 only if
    its data root, reward root and batch CID match what the chain verified."""
    from veristream.commands import verify_command

    raise typer.Exit(verify_command(job, epoch, json_out, batch_cid, deployment))


@app.command()
def claim(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    account: str | None = typer.Option(None, help="Beneficiary address (default: the top earner)."),
    all_accounts: bool = typer.Option(
        False, "--all", help="Claim for every account with an unpaid reward, 100 a transaction (claimMany)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Build a contributor's reward proof against the latest verified epoch and claim it."""
    from veristream.commands import claim_command

    raise typer.Exit(claim_command(job, account, json_out, all_accounts))


_JOB = typer.Argument(..., help="The job spec (YAML): its work directory, stores and chain.")
_JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command()
def epochs(job: str = _JOB, json_out: bool = _JSON) -> None:
    """Each epoch of a job: status, readings accepted and rejected, batch and manifest CIDs, roots,
    signers and their weight, gas and tx (read-only)."""
    import json

    from rich.console import Console

    from veristream import render
    from veristream.inspect import list_epochs
    from veristream.pipeline.jobspec import load_job

    rows = list_epochs(load_job(job))
    if json_out:
        typer.echo(json.dumps({"epochs": rows}, sort_keys=True))
    else:
        render.epochs_table(rows, Console())


@app.command()
def epoch(
    job: str = _JOB,
    number: int = typer.Argument(..., metavar="EPOCH", help="The epoch number."),
    json_out: bool = _JSON,
) -> None:
    """One epoch in full: counts, every CID its manifest links, roots, the reward split, signers,
    gas, tx, and its dead letters by reason (read-only); exit 3 if it was never computed."""
    import json

    from rich.console import Console

    from veristream import render
    from veristream.inspect import epoch_detail
    from veristream.pipeline.jobspec import load_job

    detail = epoch_detail(load_job(job), number)
    if json_out:
        typer.echo(json.dumps(detail, sort_keys=True))
    else:
        render.epoch_detail(detail, Console())


@app.command()
def deadletters(
    job: str = _JOB,
    epoch: int | None = typer.Option(None, "--epoch", help="Only this epoch's."),
    reason: str | None = typer.Option(None, "--reason", help="Only this reason's (e.g. bad_signature)."),
    device: str | None = typer.Option(None, "--device", help="Only this device's (pipeline rejections name it)."),
    json_out: bool = _JSON,
) -> None:
    """The rejected messages of a job with their reasons, in the order they were filed (read-only)."""
    import json

    from rich.console import Console

    from veristream import render
    from veristream.inspect import list_dead_letters
    from veristream.pipeline.jobspec import load_job

    rows = list_dead_letters(load_job(job), epoch, reason, device)
    if json_out:
        typer.echo(json.dumps({"dead_letters": rows}, sort_keys=True))
    else:
        render.dead_letters_table(rows, Console())


@app.command()
def export(
    job: str = _JOB,
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    out: str = typer.Option(..., "--out", help="Directory to write readings, aggregates, rewards, deadletters to."),
    epoch: Annotated[
        list[int] | None, typer.Option("--epoch", help="An epoch to export (repeatable; default: every one).")
    ] = None,
    json_out: bool = _JSON,
) -> None:
    """Export the accepted readings, aggregates, rewards and dead letters of chosen epochs, one file
    per table, each row tagged with its epoch (batches fetched from the store, re-hashed)."""
    import json
    from pathlib import Path

    from veristream.inspect import export_epochs
    from veristream.pipeline.jobspec import load_job

    report = export_epochs(load_job(job), fmt, Path(out), epoch or [])
    if json_out:
        typer.echo(json.dumps(report, sort_keys=True))
    else:
        for name, item in report["files"].items():
            typer.echo(f"{name:12} {item['rows']:>7} rows  {item['path']}")


@app.command()
def explain(
    job: str = _JOB,
    device: str = typer.Option(..., "--device", help="The device id (as in its readings)."),
    epoch: int | None = typer.Option(None, "--epoch", help="Only this epoch (default: every one)."),
    json_out: bool = _JSON,
) -> None:
    """Why a device earned what it earned: readings accepted and rejected by reason, quality weight,
    share of the budget, the cap, the rounding, and its reward leaf proved against the chain's
    root; exit 1 if the proof does not check."""
    import json

    from rich.console import Console

    from veristream import render
    from veristream.explain import explain_device
    from veristream.pipeline.jobspec import load_job

    report = explain_device(load_job(job), device, epoch)
    if json_out:
        typer.echo(json.dumps(report, sort_keys=True))
    else:
        render.explanation(report, Console())
    leaf = report["leaf"]
    raise typer.Exit(EXIT_MISMATCH if leaf is not None and leaf["proof_ok"] is False else EXIT_OK)


proof_app = typer.Typer(
    help="Merkle proofs of a verified epoch's readings, aggregates and rewards, as the contracts take them.",
    no_args_is_help=True,
)
app.add_typer(proof_app, name="proof")


def _print_proof(job: str, kind: str, epoch: int | None, json_out: bool, **selector: Any) -> None:
    """Make one proof (``veristream.proofs``) and print it as JSON or as lines."""
    import json

    from veristream.pipeline.jobspec import load_job
    from veristream.proofs import epoch_proof, proof_lines

    proof = epoch_proof(load_job(job), kind, epoch, **selector)
    typer.echo(json.dumps(proof, sort_keys=True) if json_out else "\n".join(proof_lines(proof)))


@proof_app.command("reading")
def proof_reading(
    job: str = _JOB,
    epoch: int = typer.Option(..., "--epoch", help="The verified epoch."),
    device: str = typer.Option(..., "--device", help="The device id (as in its readings)."),
    seq: int = typer.Option(..., "--seq", min=0, help="The reading's sequence number."),
    json_out: bool = _JSON,
) -> None:
    """Prove one accepted reading against the epoch's data root (EpochVerifier.verifyReadingData);
    exit 3 if the epoch is not verified or the reading is not in it."""
    _print_proof(job, "reading", epoch, json_out, device=device, seq=seq)


@proof_app.command("aggregate")
def proof_aggregate(
    job: str = _JOB,
    epoch: int = typer.Option(..., "--epoch", help="The verified epoch."),
    device: str = typer.Option(..., "--device", help="The device id (as in its readings)."),
    field: str = typer.Option(..., "--field", help="The aggregated payload field."),
    json_out: bool = _JSON,
) -> None:
    """Prove a device's aggregate of one field (count, min, max, sum, quantiles) against the epoch's
    aggregates root (EpochVerifier.verifyAggregate); exit 3 if not verified or not there."""
    _print_proof(job, "aggregate", epoch, json_out, device=device, field=field)


@proof_app.command("reward")
def proof_reward(
    job: str = _JOB,
    account: str = typer.Option(..., "--account", help="The beneficiary's address (0x...)."),
    epoch: int | None = typer.Option(
        None, "--epoch", help="The verified epoch (default: the claimable one, the job's highest verified)."
    ),
    json_out: bool = _JSON,
) -> None:
    """Prove an account's cumulative reward against an epoch's reward root (RewardDistributor.claim,
    which pays against the job's highest verified epoch only); exit 3 if not verified or not there."""
    _print_proof(job, "reward", epoch, json_out, account=account)


chain_app = typer.Typer(help="Deploy and inspect the VeriStream contracts.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")


@chain_app.command("deploy")
def chain_deploy(
    target: str | None = typer.Argument(None, help="An embedded chain's work directory (or a node: --rpc-url)."),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="A JSON-RPC node: http(s):// or ipc://PATH."),
    signer: str | None = typer.Option(
        None, envvar="VERISTREAM_SIGNER", help="env:NAME, keystore:PATH or node (development nodes only)."
    ),
    out: str | None = typer.Option(None, "--out", help="Write the deployment JSON here (default: print only)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    activation_delay: int | None = typer.Option(
        None,
        "--activation-delay",
        metavar="SECONDS",
        help="Seconds from an operator-set change to its effect (default: 2 days; 1 with --dev).",
    ),
    dev: bool = typer.Option(False, "--dev", help="A local development chain: allow an activation delay under 2 days."),
) -> None:
    """Deploy OperatorRegistry, EpochVerifier, RewardDistributor, DeviceRegistry, CredentialRegistry and a RewardToken."""
    from pathlib import Path

    from veristream.chain import connect_target
    from veristream.contracts import deploy_all
    from veristream.provers.errors import VeriStreamError

    if (target is None) == (rpc_url is None):
        raise typer.BadParameter("give an embedded chain's directory or --rpc-url, not both")
    try:
        chain = connect_target(rpc_url or str(target), signer)
        try:
            dep = deploy_all(chain, activation_delay=activation_delay, dev=dev, save_to=Path(out) if out else None)
        finally:
            chain.close()
    except VeriStreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    typer.echo(dep.to_json() if json_out else "\n".join(f"{k:20} {v}" for k, v in _dataclass_fields(dep).items()))


@chain_app.command("operator-set")
def chain_operator_set(
    target: str = typer.Argument(..., help="An embedded chain's work directory, or a JSON-RPC url."),
    deployment: str = typer.Option(..., help="deployment.json of the contracts (`chain deploy --json`)."),
    scheme: str = typer.Option("bls12381", help="bls12381 or bn254."),
    signer: str | None = typer.Option(
        None, envvar="VERISTREAM_SIGNER", help="The registry owner: env:NAME, keystore:PATH or node."
    ),
) -> None:
    """Create an empty operator set in the OperatorRegistry (owner only); print its id for operators.set_id."""
    from pathlib import Path

    from veristream.chain import connect_target
    from veristream.contracts import create_operator_set, load_deployment

    chain = connect_target(target, signer)
    try:
        set_id = create_operator_set(chain, load_deployment(chain, Path(deployment)), scheme)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    finally:
        chain.close()
    typer.echo(set_id)


@chain_app.command("epoch")
def chain_epoch(
    job: str = typer.Argument(..., help="The job spec (YAML): its chain, deployment and job id."),
    epoch: int = typer.Argument(..., help="The epoch number."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print a verified epoch as the chain holds it: roots, batch CID, signers, tx (chain read-only);
    exit 3 if it is not verified."""
    import json

    from veristream.connectors.ipfs.cid import format_cid
    from veristream.inspect import chain_view, signer_slots
    from veristream.pipeline.jobspec import load_job
    from veristream.provers.errors import NotFound

    spec = load_job(job)
    with chain_view(spec) as view:
        info = view.epoch(epoch)
    if info is None:
        raise NotFound(f"epoch {epoch} of job {spec.job_id!r} is not verified on chain: see `veristream epochs JOB`")
    out = {
        "job_id": "0x" + info.job_id.hex(),
        "epoch": info.epoch,
        "data_root": "0x" + info.data_root.hex(),
        "aggregates_root": "0x" + info.aggregates_root.hex(),
        "reward_root": "0x" + info.reward_root.hex(),
        "batch_cid": format_cid(info.batch_cid) if info.batch_cid else None,
        "manifest_cid": format_cid(info.manifest_cid) if info.manifest_cid else None,
        "manifest_cid_hash": "0x" + info.manifest_cid_hash.hex(),
        "signers": signer_slots(info.signer_bitmap),
        "signed_weight": info.signed_weight,
        "total_weight": info.total_weight,
        "tx_hash": info.tx_hash,
    }
    typer.echo(json.dumps(out) if json_out else "\n".join(f"{k:15} {v}" for k, v in out.items()))


def _dataclass_fields(value: Any) -> dict[str, Any]:
    """The fields of a slotted dataclass as a dict (for printing)."""
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}

device_app = typer.Typer(
    help="Devices in the DeviceRegistry a job names (devices.address): register, rotate, revoke, key-agreement, show.",
    no_args_is_help=True,
)
app.add_typer(device_app, name="device")

_DEVICE = typer.Option(..., "--device", help="The device's address (its id in readings).")


def _device_command(job: str, action: Any, *args: Any) -> dict[str, Any]:
    """Run one ``veristream.devices`` action on the job's registry; a refusal is one line and its exit code."""
    from veristream.pipeline.jobspec import load_job
    from veristream.provers.errors import VeriStreamError

    try:
        result: dict[str, Any] = action(load_job(job), *args)
    except (VeriStreamError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    return result


@device_app.command("register")
def device_register(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the registry (devices.address)."),
    device: str = _DEVICE,
    owner: str = typer.Option(..., "--owner", help="The beneficiary: where the device's rewards go."),
    scheme: str = typer.Option(..., "--scheme", help="secp256k1, ed25519 or p256."),
    public_key: str | None = typer.Option(
        None, "--public-key", help="HEX key (secp256k1/p256: 64-byte x||y; ed25519: 32 bytes); a secp256k1 "
        "device may leave it out (its id is the key's address)."
    ),
    credential: str | None = typer.Option(
        None, "--credential", help="The device's credential (JSON file): checked against devices.credentials, "
        "stored on IPFS and anchored with the device."
    ),
) -> None:
    """Register a device with its first key, in force from timestamp 0 (the registry's owner);
    with ``devices.credentials`` its credential is checked first and anchored with it."""
    import json

    from veristream import credential_anchors

    result = _device_command(job, credential_anchors.register, device, owner, scheme, public_key, credential)
    typer.echo(json.dumps(result))


@device_app.command("rotate")
def device_rotate(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the registry (devices.address)."),
    device: str = _DEVICE,
    scheme: str = typer.Option(..., "--scheme", help="The new key's scheme: secp256k1, ed25519 or p256."),
    public_key: str = typer.Option(..., "--public-key", help="The new key, HEX, in full."),
    authorization: str | None = typer.Option(
        None, "--authorization", help="HEX signature of the rotation by the current secp256k1 key "
        "(lets the beneficiary rotate; without it the registry's owner or a manager must)."
    ),
) -> None:
    """Replace a device's key from the block's time on; readings stamped earlier keep the old key."""
    import json

    from veristream import devices

    typer.echo(json.dumps(_device_command(job, devices.rotate, device, scheme, public_key, authorization)))


@device_app.command("revoke")
def device_revoke(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the registry (devices.address)."),
    device: str = _DEVICE,
    from_ms: int | None = typer.Option(
        None, "--from-ms", help="Readings stamped at or after this time (ms) are refused (default: the chain's time)."
    ),
) -> None:
    """Revoke a device (its beneficiary, a manager or the registry's owner)."""
    import json

    from veristream import devices

    typer.echo(json.dumps(_device_command(job, devices.revoke, device, from_ms)))


@device_app.command("key-agreement")
def device_key_agreement(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the registry (devices.address)."),
    device: str = _DEVICE,
    public_key: str = typer.Option(..., "--public-key", help="The device's X25519 key, 32 bytes HEX."),
    validity: int = typer.Option(31_536_000, "--validity", help="Seconds it stays in the DID document."),
    revoke: bool = typer.Option(False, "--revoke", help="Remove this key from the DID document instead."),
) -> None:
    """Publish a device's X25519 key in its DID document (keyAgreement), or revoke it (its owner, a manager or the registry's owner)."""
    import json

    from veristream import devices

    typer.echo(json.dumps(_device_command(job, devices.key_agreement, device, public_key, validity, revoke)))


@device_app.command("show")
def device_show(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the registry (devices.address)."),
    device: str = _DEVICE,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A device's current key, every key with its window, beneficiary and revocation."""
    import json

    from veristream import devices

    info = _device_command(job, devices.show, device)
    typer.echo(json.dumps(info) if json_out else devices.render_show(info))


did_app = typer.Typer(
    help="Device DIDs (did:ethr, resolved from the DeviceRegistry's ERC-1056 events on chain).",
    no_args_is_help=True,
)
app.add_typer(did_app, name="did")


@did_app.command("resolve")
def did_resolve(
    did: str = typer.Argument(..., help="The DID: did:ethr:0x<chain id>:0x<device> (`veristream device show` prints it)."),
    job: str | None = typer.Option(None, "--job", help="A job spec (YAML): its chain and DeviceRegistry (devices.address)."),
    chain: str | None = typer.Option(None, "--chain", help="Instead of --job: a JSON-RPC url or an embedded chain's directory."),
    registry: str | None = typer.Option(None, "--registry", help="With --chain: the DeviceRegistry's address."),
    at: str | None = typer.Option(
        None, "--at", help="Resolve as of this time: milliseconds since 1970 or ISO 8601 (2026-12-05T13:00:00Z)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the DID resolution result (document and metadata) as JSON."),
) -> None:
    """Print a device's W3C DID document: its keys in force (Multikey), key-agreement keys and
    services, as of now or --at; exit 3 for a DID that names no device of the registry."""
    import json

    from veristream import dids
    from veristream.pipeline.jobspec import load_job
    from veristream.provers.errors import VeriStreamError

    if (job is None) == (chain is None):
        raise typer.BadParameter("give --job, or --chain and --registry")
    try:
        target = dids.ChainTarget(job=load_job(job) if job else None, chain=chain, registry=registry)
        result = dids.resolve(did, target, None if at is None else dids.parse_time(at))
    except (VeriStreamError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    typer.echo(json.dumps(result) if json_out else dids.render_resolution(result))


operator_app = typer.Typer(help="Operator keys, registration and serving.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")


@operator_app.command("keygen")
def operator_keygen(
    scheme: str = typer.Option("bls12381", help="bls12381 or bn254."),
    out: str = typer.Option(..., help="Where to write the key (JSON, mode 0600)."),
    chain_id: int | None = typer.Option(None, help="With --registry/--set-id/--operator: the chain id the PoP is for."),
    registry: str | None = typer.Option(None, help="The OperatorRegistry address the PoP is for."),
    set_id: int | None = typer.Option(None, help="The operator set the PoP is for."),
    operator: str | None = typer.Option(None, help="The operator account the PoP is for."),
) -> None:
    """Generate an operator BLS key; print the public part.

    With --chain-id, --registry, --set-id and --operator it also prints `registry_pop`, the
    proof of possession that registers this key for that operator in that set (and nowhere
    else), for the registry owner's `registerOperator`: the secret never leaves the operator.
    """
    import json
    import os

    from veristream.provers.aggregation import OperatorKey, keygen
    from veristream.provers.errors import InputRejected

    context = (chain_id, registry, set_id, operator)
    if any(v is not None for v in context) and any(v is None for v in context):
        raise typer.BadParameter("a proof of possession needs all of --chain-id, --registry, --set-id and --operator")
    try:
        key = keygen(scheme)
        public = {k: v for k, v in key.items() if k != "secret_key"}
        if chain_id is not None and registry is not None and set_id is not None and operator is not None:
            pop = OperatorKey.from_key_file(key).registration_pop(chain_id, registry, set_id, operator)
            public |= {"chain_id": str(chain_id), "registry": registry, "set_id": str(set_id), "operator": operator}
            public["registry_pop"] = "0x" + pop.hex()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputRejected(f"operator keygen: {out} exists; a key is never overwritten: choose another --out") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(key, handle, indent=1)
    typer.echo(json.dumps(public, indent=1))


@operator_app.command("register")
def operator_register(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    key: str = typer.Option(..., help="Key file from `operator keygen`."),
    account: str | None = typer.Option(None, help="Operator account (default: the chain's sender)."),
    weight: int = typer.Option(1, help="Signing weight."),
) -> None:
    """Register an operator key in the job's operator set on chain, with a proof of possession
    made from the key file's secret for this chain, registry, set and account."""
    import json
    from pathlib import Path

    from veristream.chain import register_key
    from veristream.pipeline.jobspec import JobSpecError, load_job

    try:
        spec = load_job(job)
        result = register_key(spec, json.loads(Path(key).read_text()), account, weight)
    except (JobSpecError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    typer.echo(json.dumps(result, indent=1))


@operator_app.command("serve")
def operator_serve(
    job: str = typer.Argument(..., help="The job spec (YAML): its store and device registry."),
    ray_address: str = typer.Option(..., help="This operator's Ray cluster, e.g. HEAD:6379."),
    key: str = typer.Option(..., help="Key file from `operator keygen`."),
    name: str = typer.Option(..., help="Actor name the coordinator lists in operators.remote."),
    namespace: str = typer.Option("veristream", help="Ray namespace of the actor."),
    slot: int = typer.Option(0, help="This operator's slot in the committee."),
) -> None:
    """Serve this operator's prover as a named, detached Ray actor until interrupted."""
    import json
    from pathlib import Path

    from veristream.committee import serve_operator
    from veristream.pipeline.jobspec import JobSpecError, load_job

    try:
        spec = load_job(job)
        serve_operator(spec, json.loads(Path(key).read_text()), ray_address, name, namespace, slot)
    except (JobSpecError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None


@app.command()
def submit(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    address: str = typer.Option(..., help="The Ray cluster's job API, e.g. http://HEAD:8265."),
    python: str | None = typer.Option(None, help="Python on the cluster (default: this one)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Hand `veristream run JOB` to a Ray cluster through Ray's job submission API."""
    from veristream.commands import submit_command

    raise typer.Exit(submit_command(job, address, python, json_out))


@app.command()
def dashboard(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    port: int = typer.Option(8050, "--port", min=0, max=65535, help="Serve on http://127.0.0.1:PORT."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """Serve a local web page over a job: epochs, dead letters, aggregates, a device's history (until Ctrl-C)."""
    import threading

    from veristream.dashboard import serve
    from veristream.live import stop_on_signals
    from veristream.pipeline.jobspec import load_job

    server = serve(load_job(job), port, host)
    typer.echo(f"dashboard on {server.url}/ (Ctrl-C to stop)", err=True)
    with stop_on_signals(threading.Event()) as stop:
        stop.wait()
    server.stop()


@app.command()
def status(
    job: str = typer.Argument(..., help="The job spec (YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """State of a submitted run, and its summary once it has succeeded."""
    from veristream.commands import status_command

    raise typer.Exit(status_command(job, json_out))


credential_app = typer.Typer(
    help="W3C verifiable credentials: issuer keys (did:key), DeviceCredentials, verification.",
    no_args_is_help=True,
)
app.add_typer(credential_app, name="credential")


@credential_app.command("authorize")
def credential_authorize(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the CredentialRegistry (devices.credentials.registry)."),
    issuer: str = typer.Option(..., "--issuer", help="The issuer's DID."),
    publisher: str = typer.Option(..., "--publisher", help="The account that may publish its status lists (0x...)."),
) -> None:
    """Authorise an account to publish an issuer's status lists (the CredentialRegistry's owner)."""
    import json

    from veristream import credential_anchors

    typer.echo(json.dumps(_device_command(job, credential_anchors.authorize, issuer, publisher)))


@credential_app.command("revoke")
def credential_revoke(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the CredentialRegistry (devices.credentials.registry)."),
    issuer_key: str = typer.Option(..., "--issuer-key", help="The issuer's key: PATH, file:PATH or env:NAME."),
    credential: str | None = typer.Option(None, "--credential", help="The credential to revoke (JSON file): its list and bit."),
    status_list: str | None = typer.Option(None, "--status-list", help="Instead of --credential: the list's URL."),
    status_index: int | None = typer.Option(None, "--status-index", help="With --status-list: the bit."),
    restore: bool = typer.Option(False, "--restore", help="Clear the bit instead (a status list can also un-revoke)."),
) -> None:
    """Revoke a credential: set its bit in the issuer's Bitstring Status List, store the re-issued
    list on IPFS and anchor it (the issuer's authorised publisher)."""
    import json

    from veristream import credential_anchors

    result = _device_command(job, credential_anchors.revoke, issuer_key, status_list, status_index, credential, restore)
    typer.echo(json.dumps(result))


@credential_app.command("status")
def credential_status(
    job: str = typer.Argument(..., help="The job spec (YAML) naming the CredentialRegistry (devices.credentials.registry)."),
    credential: str = typer.Option(..., "--credential", help="The credential (JSON file)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Whether a credential is revoked in its issuer's status list as anchored now: exit 0 when
    it is not, 1 when it is."""
    import json

    from veristream import credential_anchors

    result = _device_command(job, credential_anchors.status, credential)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        state = "revoked" if result["revoked"] else "not revoked"
        typer.echo(f"{state}: bit {result['index']} of {result['list']} (version {result['version']}, {result['cid']})")
    raise typer.Exit(1 if result["revoked"] else 0)


@credential_app.command("keygen")
def credential_keygen(
    scheme: str = typer.Option("ed25519", "--scheme", help="ed25519 (eddsa-rdfc-2022) or p256 (ecdsa-rdfc-2019)."),
    out: str = typer.Option(..., "--out", help="Where to write the key (Multikey JSON, mode 0600; never overwritten)."),
    json_out: bool = _JSON,
) -> None:
    """Generate an issuer key; print its did:key (the issuer of the credentials it signs)."""
    import json

    from veristream.credentials import keygen

    public = keygen(scheme, out)
    typer.echo(json.dumps(public, sort_keys=True) if json_out else public["did"])


@credential_app.command("issue")
def credential_issue(
    issuer_key: str = typer.Option(
        ..., "--issuer-key", help="PATH or file:PATH (a key from `credential keygen`), or env:NAME (a secretKeyMultibase)."
    ),
    subject: str = typer.Option(..., "--subject", help="The device's DID (credentialSubject.id)."),
    credential_type: str = typer.Option("DeviceCredential", "--type", help="The credential type: DeviceCredential."),
    model: str = typer.Option(..., "--model", help="The device's model."),
    serial: str = typer.Option(..., "--serial", help="The device's serial number."),
    firmware_hash: str = typer.Option(..., "--firmware-hash", help="Hash of the device's firmware: 0x and 32 bytes of hex."),
    manufacturer: str | None = typer.Option(None, "--manufacturer", help="The manufacturer's name."),
    valid_from: str | None = typer.Option(None, "--valid-from", help="validFrom, e.g. 2026-01-01T00:00:00Z."),
    valid_until: str | None = typer.Option(None, "--valid-until", help="validUntil, e.g. 2036-01-01T00:00:00Z."),
    credential_id: str | None = typer.Option(None, "--id", help="The credential's own id (a URL), if it has one."),
    status_list: str | None = typer.Option(
        None, "--status-list", help="URL of the issuer's Bitstring Status List: the credential is revocable there."
    ),
    status_index: int | None = typer.Option(None, "--status-index", help="With --status-list: the credential's bit in it."),
    out: str | None = typer.Option(None, "--out", help="Write the credential here (default: print it)."),
) -> None:
    """Issue a DeviceCredential signed by the issuer key (Data Integrity: eddsa-rdfc-2022 for an
    Ed25519 key, ecdsa-rdfc-2019 for P-256)."""
    import json
    from pathlib import Path

    from veristream.credentials import issue

    secured = issue(
        issuer_key, credential_type, subject, model, serial, firmware_hash, manufacturer, valid_from, valid_until,
        credential_id, status_list, status_index,
    )
    text = json.dumps(secured, indent=2)
    if out is None:
        typer.echo(text)
        return
    Path(out).write_text(text + "\n")
    typer.echo(f"{out}: {credential_type} for {subject} issued by {secured['issuer']}")


@credential_app.command("verify")
def credential_verify(
    file: str = typer.Argument(..., help="The credential (JSON file; - for stdin)."),
    now: str | None = typer.Option(None, "--now", help="Judge validity at this time (default: now), e.g. 2030-01-01T00:00:00Z."),
    json_out: bool = _JSON,
) -> None:
    """Verify a VC 2.0 credential secured with eddsa-rdfc-2022 or ecdsa-rdfc-2019, issuer resolved
    offline (did:key); exit 0 only when it verifies, 1 when it does not (with the reason)."""
    import json

    from veristream.credentials import render_verdict, verify

    result = verify(file, now)
    typer.echo(json.dumps(result.to_json(), sort_keys=True) if json_out else render_verdict(result))
    raise typer.Exit(EXIT_OK if result.verified else EXIT_MISMATCH)


if __name__ == "__main__":  # pragma: no cover
    entry()
