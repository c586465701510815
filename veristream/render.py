"""What the command line shows people: tables and lines for run summaries and audits.

``--json`` output is the same data without this layer; nothing here computes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from veristream.audit import AuditReport


def why_unverified(row: dict[str, Any]) -> str:
    """Why an epoch row of a run summary is not verified."""
    if row["data_root"] == "0x" + "00" * 32:
        return "no (no accepted readings)"
    if row.get("expired") is not None:
        return f"no (expired: its submission window closed at {row['expired']})"
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


def claim_line(claim: dict[str, Any]) -> str:
    """One claim (``veristream.chain.claim_for``'s result) in the token's units."""
    if claim.get("short"):
        return (
            f"[yellow]the claim of {claim['due_display']} for {claim['account']} would fail: the reward pool "
            f"holds {claim['pool_display']}, {claim['short_display']} short (fund the pool, then "
            "`veristream claim`)[/yellow]"
        )
    return f"claimed {claim.get('amount_display', claim['amount'])} for {claim['account']} (tx {claim['tx_hash']})"


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
