"""`vitrt models`: the zoo at a glance."""

from __future__ import annotations

import json

import typer

from vitrt.cli import app, make_console


def count_parameters_m(name: str) -> float:
    """Parameter count in millions at the default input size, built on the meta device (no memory, no init cost)."""
    import torch

    from vitrt.models import get_spec

    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.builder(img_size=spec.default_img_size, num_classes=spec.num_classes, **spec.builder_kwargs)
    return sum(p.numel() for p in model.parameters()) / 1e6


@app.command("models")
def models_command(
    family: str = typer.Option(None, "--family", "-f", help="Only this family (flatten, agent, inline, mlla, ca)."),
    trained: bool = typer.Option(False, "--trained", help="Only models with bundled trained weights."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the model zoo: family, parameters, default input size and bundled trained weights."""
    from rich.table import Table

    from vitrt.errors import VitrtError
    from vitrt.models import get_spec, list_models
    from vitrt.models.registry import FAMILIES

    if family is not None and family not in FAMILIES:
        raise VitrtError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    rows = []
    for name in list_models(family=family, with_weights=True if trained else None):
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "backbone": spec.backbone,
                "params_m": round(count_parameters_m(name), 2),
                "img_size": spec.default_img_size,
                "num_classes": spec.num_classes,
                "trained_weights": spec.has_weights,
                "official": spec.official_name,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"vitrt models ({len(rows)})")
    for column in (
        "name",
        "family",
        "backbone",
        "params (M)",
        "input",
        "classes",
        "trained weights",
        "official",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["family"]),
            str(row["backbone"]),
            f"{row['params_m']:.2f}",
            str(row["img_size"]),
            str(row["num_classes"]),
            "yes (digits)" if row["trained_weights"] else "-",
            str(row["official"]),
        )
    make_console().print(table)
