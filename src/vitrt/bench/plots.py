"""PNG plots of a benchmark (matplotlib, headless Agg backend).

latency_vs_resolution.png: median latency against resolution, log-log, one line per model and runtime with the
    fitted cost exponent in tokens in the legend (1.0 = linear, 2.0 = quadratic);
throughput_vs_batch.png: images/s against batch size per runtime and precision;
speed_vs_error.png: throughput against the parity error (max abs logit difference), one point per configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitrt.bench.report import BenchResult, Row

PLOTS = ("latency_vs_resolution.png", "throughput_vs_batch.png", "speed_vs_error.png")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(result: BenchResult, directory: Path) -> list[Path]:
    """Every plot the measured rows support; returns the files written."""
    rows = result.measured
    written = []
    if len({r.img_size for r in rows}) > 1:
        written.append(latency_vs_resolution(result, directory / PLOTS[0]))
    if len({r.batch for r in rows}) > 1:
        written.append(throughput_vs_batch(rows, directory / PLOTS[1]))
    if any(r.parity for r in rows):
        written.append(speed_vs_error(rows, directory / PLOTS[2]))
    return written


def _label(row: Row, with_model: bool) -> str:
    name = f"{row.backend} {row.precision}"
    return f"{row.model} · {name}" if with_model else name


def latency_vs_resolution(
    result: BenchResult,
    path: Path,
    *,
    batch: int | None = None,
    title: str | None = None,
    by_backend: bool = False,
) -> Path:
    """Log-log latency against resolution at one batch size (default: the smallest measured).

    by_backend: one panel per runtime and precision, one line per model (the scaling study's figure).
    """
    plt = _pyplot()
    rows = result.measured
    batch = batch if batch is not None else min(r.batch for r in rows)
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for row in rows:
        if row.batch == batch:
            groups.setdefault((row.role, row.model, row.backend, row.precision), []).append(row)
    panels = sorted({(key[2], key[3]) for key in groups}) if by_backend else [None]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(8.5 * len(panels), 6.5), dpi=110, squeeze=False, sharey=by_backend
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        chosen = {k: v for k, v in groups.items() if panel is None or (k[2], k[3]) == panel}
        _latency_axes(ax, result, chosen, batch, with_runtime=panel is None)
        if panel is not None:
            ax.set_title(f"{panel[0]} {panel[1]}, batch {batch}")
    fig.suptitle(title or f"{result.source}: latency against resolution (dashed: softmax baseline)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _latency_axes(
    ax: Any, result: BenchResult, groups: dict[tuple[str, str, str, str], list[Row]], batch: int, with_runtime: bool
) -> None:
    exponents = {(f["model"], f["backend"], f["precision"], f["batch"]): f["exponent_tokens"] for f in result.scaling}
    with_model = len({key[1] for key in groups}) > 1 or not with_runtime
    for (role, model, backend, precision), members in sorted(groups.items()):
        members.sort(key=lambda r: r.img_size)
        if len(members) < 2:
            continue
        exponent = exponents.get((model, backend, precision, batch))
        label = _label(members[0], with_model) if with_runtime else model
        label += f"  (exponent {exponent:.2f})" if exponent is not None else ""
        style = "--" if role == "baseline" else "-"
        ax.plot(
            [r.img_size for r in members],
            [r.latency_ms["median"] for r in members if r.latency_ms],
            style,
            marker="o",
            label=label,
        )
    sizes = sorted({r.img_size for members in groups.values() for r in members})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.minorticks_off()
    _readable_log_y(ax)
    ax.set_xlabel("input resolution (px, log scale; tokens grow with px²)")
    ax.set_ylabel(f"median latency per batch of {batch} (ms, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", title="exponent = slope in tokens", title_fontsize=8)


def _readable_log_y(ax: Any) -> None:
    """Log-scale y ticks at 1-2-5 steps with plain numbers (a log axis spanning one decade shows no labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def throughput_vs_batch(rows: list[Row], path: Path) -> Path:
    plt = _pyplot()
    size = max(r.img_size for r in rows if r.role == "model") if any(r.role == "model" for r in rows) else 0
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        if row.img_size == size and row.role == "model":
            groups.setdefault((row.model, row.backend, row.precision), []).append(row)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for (_, backend, precision), members in sorted(groups.items()):
        members.sort(key=lambda r: r.batch)
        ax.plot([r.batch for r in members], [r.throughput for r in members], marker="o", label=f"{backend} {precision}")
    batches = sorted({r.batch for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size (log scale)")
    ax.set_ylabel("throughput (images/s)")
    ax.set_title(f"throughput against batch at {size} px")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def speed_vs_error(rows: list[Row], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.parity is not None and row.role == "model":
            groups.setdefault((row.backend, row.precision), []).append(row)
    for (backend, precision), members in sorted(groups.items()):
        errors = [max(r.parity["max_abs"], 1e-9) for r in members if r.parity]
        marker = "o" if all(r.passed for r in members) else "x"
        ax.scatter(errors, [r.throughput for r in members], marker=marker, label=f"{backend} {precision}")
        for r, e in zip(members, errors, strict=True):
            ax.annotate(f"b{r.batch} {r.img_size}px", (e, r.throughput), fontsize=6, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("max abs logit error vs PyTorch fp32 (log scale; x = over the precision's budget)")
    ax.set_ylabel("throughput (images/s)")
    ax.set_title("speed against error, one point per configuration")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
