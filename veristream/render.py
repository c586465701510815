"""What the command line shows people: tables and lines for run summaries and audits.

``--json`` output is the same data without this layer; nothing here computes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from veristream.audit import AuditReport


def rejected_line(rejected: dict[str, int]) -> str:
    """``8 rejected (clock_skew)``, or ``5 rejected (bad_signature 3, replay 2)`` for several reasons."""
    total = sum(rejected.values())
    if len(rejected) == 1:
        return f"{total} rejected ({next(iter(rejected))})"
    return f"{total} rejected ({', '.join(f'{reason} {n}' for reason, n in rejected.items())})"


def why_unverified(row: dict[str, Any]) -> str:
    """Why an epoch row of a run summary is not verified: an empty epoch (nothing to verify,
    nothing paid) says so with its rejections counted."""
    if row.get("status") == "empty" or (row.get("status") is None and row["data_root"] == "0x" + "00" * 32):
        rejected = row.get("rejected") or {}
        return "empty" + (f": {rejected_line(rejected)}" if rejected else "")
    if row.get("expired") is not None:
        return f"no (expired: its submission window closed at {row['expired']})"
    if row.get("status") == "refused":
        return "no (refused: too few operators signed)"
    return "no (not submitted)"


def run_summary(summary: dict[str, Any], console: Console) -> None:
    """A run's summary (``RunSummary.to_json()``) as tables: counts, dead letters, epochs, claims."""
    rejected = sum(summary["rejected"].values())
    waiting = summary["readings_in"] - summary["accepted"] - rejected
    console.print(
        f"[bold]{summary['job_id']}[/bold]: {summary['readings_in']} readings in, "
        f"{summary['accepted']} accepted, {rejected} rejected"
        + (f", {waiting} waiting in open epochs (the next run continues them)" if waiting > 0 else "")
    )
    if summary["rejected"]:
        reasons = Table(title="dead letters by reason")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for reason, count in summary["rejected"].items():
            reasons.add_row(reason, str(count))
        console.print(reasons)
    epochs = Table(title="epochs")
    for column in ("epoch", "batch CID", "data root", "reward root", "gas", "verified"):
        epochs.add_column(column)
    for row in summary["epochs"]:
        epochs.add_row(
            str(row["epoch"]),
            row["batch_cid"],
            row["data_root"][:18] + "…",
            row["reward_root"][:18] + "…",
            "" if row["gas"] is None else f"{row['gas']:,}",
            "[green]yes[/green]" if row["verified"] else why_unverified(row),
        )
    console.print(epochs)
    for epoch, refusals in summary.get("refusals", {}).items():
        for operator, reason in refusals.items():
            console.print(f"[yellow]epoch {epoch}: operator {operator} refused: {reason}[/yellow]")
    funding = summary.get("funding")
    if funding is not None:
        console.print(
            f"[yellow]the reward pool holds {funding['balance_display']} but contributors can claim "
            f"{funding['owed_display']}: it is {funding['short_display']} short[/yellow]"
        )
    for claim in summary["claims"]:
        console.print(claim_line(claim))


def committee_line(runtime: str, epochs: int) -> str:
    """Where the committee ran (``veristream.run.committee_runtime``), said after a run."""
    where = {
        "local processes": "in local processes (a job this small needs no Ray; name ray.address for a cluster)",
        "in this process": "in this process, one after another (--no-ray)",
    }.get(runtime, "as Ray actors")
    return f"committee: every operator re-executed {epochs} epoch(s) {where}"


def claim_line(claim: dict[str, Any]) -> str:
    """One claim (``veristream.chain.claim_for``'s result) in the token's units."""
    if claim.get("short"):
        return (
            f"[yellow]the claim of {claim['due_display']} for {claim['account']} would fail: the reward pool "
            f"holds {claim['pool_display']}, {claim['short_display']} short (fund the pool, then "
            "`veristream claim`)[/yellow]"
        )
    return f"claimed {claim.get('amount_display', claim['amount'])} for {claim['account']} (tx {claim['tx_hash']})"


def claim_all_line(result: dict[str, Any]) -> str:
    """``claim --all`` (``veristream.chain.claim_all``'s result) in the token's units."""
    if result.get("short"):
        return (
            f"[yellow]claiming {result['due_display']} for {result['accounts']} accounts would fail: the reward "
            f"pool holds {result['pool_display']}, {result['short_display']} short (fund the pool, then "
            "`veristream claim --all`)[/yellow]"
        )
    count = len(result["tx_hashes"])
    return (
        f"claimed {result['amount_display']} for {result['accounts']} accounts in {count} "
        f"transaction{'s' if count != 1 else ''} ({result['gas_used']:,} gas; tx {', '.join(result['tx_hashes'])})"
    )


def audit_report(report: AuditReport, epoch: int, console: Console) -> None:
    """An audit of one epoch: the chain's commitments beside the recomputed ones, and the verdict."""
    if report.checks:
        table = Table(title=f"epoch {epoch}: chain vs recomputed from IPFS")
        for column in ("field", "on chain", "recomputed", "match"):
            table.add_column(column)
        for check in report.checks:
            mark = "[green]yes[/green]" if check.ok else "[red]NO[/red]"
            table.add_row(check.name, check.chain, check.recomputed, mark)
        console.print(table)
    for line in report.findings:
        console.print(line)
    if report.ok:
        console.print(f"[green]verified[/green]: epoch {epoch} recomputes to the chain's commitments (tx {report.tx_hash})")
    else:
        console.print(f"[red]MISMATCH[/red]: {report.reason}")


def epochs_table(rows: list[dict[str, Any]], console: Console) -> None:
    """``veristream epochs``: one row per epoch (``veristream.inspect.epoch_row``)."""
    if not rows:
        console.print("no epochs computed yet: run the job (veristream run JOB)")
        return
    table = Table(title="epochs")
    for column in ("epoch", "status", "accepted", "rejected", "batch CID", "manifest CID", "data root",
                   "reward root", "signers (weight)", "gas", "tx"):
        table.add_column(column, overflow="fold")
    for row in rows:
        signers = ",".join(map(str, row["signers"]))
        weight = f" ({row['signed_weight']}/{row['total_weight']})" if row["signed_weight"] is not None else ""
        table.add_row(
            str(row["epoch"]),
            row["status"],
            str(row["accepted"]),
            str(row["rejected"]),
            row["batch_cid"],
            row["manifest_cid"] or "",
            row["data_root"][:18] + "…",
            row["reward_root"][:18] + "…",
            signers + weight,
            "" if row["gas"] is None else f"{row['gas']:,}",
            row["tx_hash"][:18] + "…" if row["tx_hash"] else "",
        )
    console.print(table)


def epoch_detail(detail: dict[str, Any], console: Console) -> None:
    """``veristream epoch``: one epoch in full (``veristream.inspect.epoch_detail``)."""
    console.print(
        f"[bold]{detail['job_id']} epoch {detail['epoch']}[/bold]: {detail['status']}, "
        f"{detail['readings_in']} readings in, {detail['accepted']} accepted, {detail['rejected']} rejected"
    )
    fields = (
        ("window (ms)", f"[{detail['start_ms']}, {detail['end_ms']})"),
        ("manifest", detail["manifest_cid"]),
        ("previous manifest", detail["prev_manifest_cid"]),
        ("batch", detail["batch_cid"]),
        ("batch on chain", detail["chain_batch_cid"]),
        ("dead letters", detail["dead_letter_cid"]),
        ("aggregates", detail["aggregates_cid"]),
        ("state", detail["state_cid"]),
        ("data tree dump", detail["trees"]["data"] or "-"),
        ("aggregates dump", detail["trees"]["aggregates"] or "-"),
        ("reward tree dump", detail["trees"]["rewards"] or "-"),
        ("data root", detail["data_root"]),
        ("aggregates root", detail["aggregates_root"]),
        ("reward root", detail["reward_root"]),
        ("signers", ", ".join(map(str, detail["signers"])) or "-"),
        ("signed weight", f"{detail['signed_weight']} of {detail['total_weight']}" if detail["signed_weight"] else "-"),
        ("gas", "-" if detail["gas"] is None else f"{detail['gas']:,}"),
        ("tx", detail["tx_hash"] or "-"),
    )
    for name, value in fields:
        console.print(f"  {name:18} {value}", highlight=False)
    rewards = detail["rewards"]
    console.print(
        f"  {'rewards':18} budget {rewards['budget_display']}, paid {rewards['paid_display']} to "
        f"{rewards['beneficiaries']} beneficiaries, remainder {rewards['remainder_display']} "
        f"(carried {rewards['carry_out_display']}, to the sink {rewards['sink_paid_display']})",
        highlight=False,
    )
    if detail["rejected_by_reason"]:
        table = Table(title="dead letters by reason")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, count in detail["rejected_by_reason"].items():
            table.add_row(reason, str(count))
        console.print(table)


def dead_letters_table(rows: list[dict[str, Any]], console: Console) -> None:
    """``veristream deadletters``: each rejected message with its reason (raw bytes shortened)."""
    table = Table(title=f"{len(rows)} dead letters")
    for column in ("epoch", "stage", "reason", "device", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            "" if row["epoch"] is None else str(row["epoch"]), row["stage"], row["reason"], row["device"] or "",
            row["detail"],
        )
    console.print(table)


def explanation(report: dict[str, Any], console: Console) -> None:
    """``veristream explain``: a device's earnings, epoch by epoch, and its proved reward leaf."""
    policy = report["policy"]
    cap = "no cap" if policy["max_per_device"] is None else "a cap per device"
    console.print(
        f"[bold]{report['device']}[/bold] (pays {report['beneficiary']}) in job {report['job_id']}: "
        f"earned {report['earned_display']} over {len(report['epochs'])} epochs; quality weight "
        f"{policy['quality_weight']}, {cap}, remainder {policy['remainder']}",
        highlight=False,
    )
    for row in report["epochs"]:
        rejected = ", ".join(f"{n} {r}" for r, n in row["rejected_by_reason"].items()) or "none"
        head = f"epoch {row['epoch']}: {row['accepted']} accepted, rejected: {rejected}"
        if "points" not in row:
            console.print(f"  {head}; {row['why']}", highlight=False)
            continue
        cap_note = (
            f"capped at {row['cap_display']} (cut {row['cut_by_cap']})" if row["capped"]
            else "under the cap" if row["cap"] is not None else "no cap"
        )
        console.print(
            f"  {head}\n"
            f"    quality {row['quality_bps']} bps (seq {row['min_seq']}..{row['max_seq']}); points "
            f"{row['points']} of {row['total_points']} among {row['devices_paid']} devices\n"
            f"    share of the budget {row['budget_display']}: {row['share_exact']} units, floor "
            f"{row['share_floor']} (rounding drops {row['rounding_lost']} unit), {cap_note}: "
            f"[bold]{row['share_display']}[/bold]",
            highlight=False,
        )
    leaf = report["leaf"]
    if leaf is None:
        console.print("  no reward leaf: the device is not in the registry")
        return
    if leaf["proof_ok"] is None:
        console.print(f"  the reward tree of epoch {leaf['epoch']} (claims pay against it) has no leaf for {leaf['account']}")
        return
    verdict = "[green]checks[/green]" if leaf["proof_ok"] else "[red]DOES NOT CHECK[/red]"
    console.print(
        f"  reward leaf of {leaf['account']} in epoch {leaf['epoch']}'s tree: cumulative {leaf['amount_display']} "
        f"(all of the beneficiary's devices), claimed {leaf['claimed_display']}, claimable "
        f"{leaf['claimable_display']}\n"
        f"  proof {', '.join(leaf['proof']) or '(single leaf)'} against the chain's root {leaf['root']}: {verdict}",
        highlight=False,
    )
