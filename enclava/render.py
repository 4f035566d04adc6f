"""Rich rendering of verdicts for the terminal (no logic a library user would need)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from attestation.verdict import Verdict

OUTCOME_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "not run": "[dim]not run[/]",
    "n/a": "[dim]n/a[/]",
}


def verdict(console: Console, v: Verdict, name: str) -> None:
    vq = v.verified_quote
    if vq is not None:
        header = vq.quote.header
        tee = f"simulated ({vq.tee.upper()})" if vq.simulated else vq.tee.upper()
        console.print(
            f"[bold]{name}[/]: quote v{header.version}, {vq.quote.size} bytes, "
            f"sha256 {vq.quote_sha256[:16]}…"
        )
        console.print(f"tee:         [bold]{tee}[/]")
    else:
        console.print(f"[bold]{name}[/]")
    checks = Table(title="DCAP checks", show_lines=False)
    checks.add_column("check")
    checks.add_column("outcome")
    checks.add_column("what / why")
    for c in v.checks:
        checks.add_row(c.name, OUTCOME_STYLE[c.outcome], c.detail or c.description)
    console.print(checks)
    if vq is not None:
        console.print(f"TCB status:  [bold]{vq.tcb_status}[/]")
        console.print(f"Advisories:  {', '.join(vq.advisory_ids) or 'none'}")
        console.print(f"FMSPC:       {vq.fmspc}")
        console.print(
            f"Trust root:  {vq.trust_anchor}{' [yellow](simulated)[/]' if vq.simulated else ''}"
        )
        measurements = Table(title="Measurements", show_header=False)
        for key, value in vq.measurements.items():
            measurements.add_row(key, value)
        console.print(measurements)
    if v.decision is not None:
        for relaxation in v.decision.relaxations:
            console.print(f"[yellow]relaxed:[/] {relaxation}")
    if v.accepted:
        console.print("[bold green]ACCEPTED[/]")
    else:
        label = "MALFORMED" if v.malformed else "REJECTED"
        console.print(f"[bold red]{label}[/]")
        for reason in v.reasons:
            console.print(f"  - {reason}")


def sample_table(console: Console, rows: Sequence[tuple[str, Verdict]]) -> None:
    table = Table(
        title="DCAP verdicts: real samples at their collateral's time; this machine's worker"
    )
    for column in (
        "quote",
        "TEE",
        "ver",
        "verified",
        "TCB status",
        "advisories",
        "accepted",
        "why not",
    ):
        table.add_column(column)
    for name, v in rows:
        vq = v.verified_quote
        table.add_row(
            name,
            (f"{vq.tee.upper()} (sim)" if vq.simulated else vq.tee.upper()) if vq else "-",
            str(vq.quote.header.version) if vq else "-",
            "yes" if v.verified else "[red]no[/]",
            str(vq.tcb_status) if vq else "-",
            ", ".join(vq.advisory_ids) if vq else "",
            "[green]yes[/]" if v.accepted else "[red]no[/]",
            "; ".join(_short(r) for r in v.reasons),
        )
    console.print(table)


def _short(reason: str, limit: int = 60) -> str:
    """A reason's gist for a table cell: up to its first parenthesis, at most `limit` chars."""
    gist = reason.split(" (", 1)[0].split(": a service TD", 1)[0]
    return gist if len(gist) <= limit else gist[: limit - 1] + "…"
