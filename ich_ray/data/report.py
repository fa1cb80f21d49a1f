"""How the exploration report looks: its figures (matplotlib, from polars tables and HU arrays) and the
one self-contained HTML page (inline CSS; only the PNGs beside it are separate files).

No I/O beyond writing the page: `ich_ray.data.explore` computes the tables and reads the slices.
Figures use `matplotlib.figure.Figure` (Agg canvas, no pyplot state), so this runs headless and in threads.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ich_ray.imaging.windows import WINDOWS, apply_window

EXAMPLE_WINDOWS = ("brain", "subdural", "bone")
NO_LABELS = "no labels"


# ---------------------------------------------------------------- figures


def _bars(ax, names: list[str], counts: list[int], *, horizontal: bool = False, color: str = "tab:blue") -> None:
    bars = (ax.barh if horizontal else ax.bar)(names, counts, color=color)
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=2)
    ax.margins(x=0.15) if horizontal else ax.margins(y=0.15)
    _integer_counts(ax.xaxis if horizontal else ax.yaxis)


def _integer_counts(axis) -> None:
    """Counts are whole numbers: no 0.5 ticks on small data sets, thousands separators on big ones."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _say(ax, text: str) -> None:
    """A blank panel that says why there is nothing to plot."""
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="0.4", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_class_balance(table: pl.DataFrame, labelled: bool) -> Figure:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Slices with and without bleed (label_any)")
    if not labelled:
        _say(ax, NO_LABELS)
        return fig
    colors = {"no bleed": "tab:blue", "bleed": "tab:red", "unlabelled": "0.6"}
    bars = ax.bar(table["class"], table["slices"], color=[colors[c] for c in table["class"]])
    ax.bar_label(bars, labels=[f"{n:,} ({p:.1f} %)" for n, p in table.select("slices", "percent").iter_rows()], padding=2)
    ax.margins(y=0.15)
    _integer_counts(ax.yaxis)
    ax.set(xlabel="class", ylabel="readable slices")
    return fig


def plot_subtypes(table: pl.DataFrame, labelled: bool) -> Figure:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Positive slices per label")
    if not labelled:
        _say(ax, NO_LABELS)
        return fig
    _bars(ax, table["label"].to_list(), table["positive"].to_list(), color="tab:red")
    ax.set(xlabel="label", ylabel="positive slices")
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def plot_pixel_formats(table: pl.DataFrame) -> Figure:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Pixel formats (BitsStored / PixelRepresentation)")
    if table.is_empty():
        _say(ax, "no readable slices")
        return fig
    names = [f"{b}-bit {'signed' if r == 1 else 'unsigned'}" for b, r in table.select("bits_stored", "pixel_representation").iter_rows()]
    bars = ax.bar(names, table["slices"], color="tab:blue")
    notes = [
        f"{n:,} slices\nbleed {'n/a' if p is None else f'{p:.1f} %'}\npx-repr fix {f:,}"
        for n, p, f in table.select("slices", "bleed_percent", "pxrepr_fixed").iter_rows()
    ]
    ax.bar_label(bars, labels=notes, padding=2, fontsize=9)
    ax.margins(y=0.35)
    _integer_counts(ax.yaxis)
    ax.set(xlabel="pixel format", ylabel="readable slices")
    return fig


def plot_brain_fraction(slices: pl.DataFrame, min_brain_fraction: float, labelled: bool) -> Figure:
    """Histogram of img_pct_window over readable `slices` (log counts: blank slices pile up at 0),
    stacked by bleed when labelled."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Brain fraction per slice (img_pct_window: share of pixels with 0 < HU < 80)")
    slices = slices.filter(pl.col("img_pct_window").is_not_null())
    if slices.is_empty():
        _say(ax, "no readable slices")
        return fig
    bins = np.linspace(0, max(1e-3, slices["img_pct_window"].max()), 51)
    if labelled:
        bleed = pl.col("label_any").eq(1).fill_null(False)
        groups = {"no bleed / unlabelled": (~bleed, "tab:blue"), "bleed": (bleed, "tab:red")}
        ax.hist([slices.filter(keep)["img_pct_window"].to_numpy() for keep, _ in groups.values()], bins=bins,
                stacked=True, label=list(groups), color=[color for _, color in groups.values()])
    else:
        ax.hist(slices["img_pct_window"].to_numpy(), bins=bins, color="tab:blue", label="slices")
    below = slices["img_pct_window"].lt(min_brain_fraction).sum()
    ax.axvline(min_brain_fraction, color="black", linestyle="--",
               label=f"threshold {min_brain_fraction:g}: {below:,} of {slices.height:,} slices below")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="brain fraction", ylabel="slices (log scale)")
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    return fig


def plot_failures(table: pl.DataFrame) -> Figure:
    fig = Figure(figsize=(8, max(3, 0.5 * table.height + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Failed files by reason (error_type)")
    if table.is_empty():
        _say(ax, "no failures")
        return fig
    _bars(ax, table["error_type"].to_list()[::-1], table["files"].to_list()[::-1], horizontal=True, color="tab:orange")
    ax.set(xlabel="files", ylabel="reason")
    return fig


def _short(name: str, keep: int = 14) -> str:
    """Long UID-like file names, cut in the middle so each row label fits under its image."""
    return name if len(name) <= 2 * keep + 1 else f"{name[:keep]}...{name[-keep:]}"


def plot_examples(subtype: str, slices: list[tuple[str, np.ndarray | None]]) -> Figure:
    """Each example (caption, HU image or None when unreadable) as a row, in the brain, subdural and bone
    windows (columns). The caption's first line is the file name."""
    rows = max(1, len(slices))
    fig = Figure(figsize=(3 * len(EXAMPLE_WINDOWS), 3 * rows + 0.6), layout="constrained")
    fig.suptitle(f"{subtype}: example slices", fontsize=14)
    axes = fig.subplots(rows, len(EXAMPLE_WINDOWS), squeeze=False)
    for ax, name in zip(axes[0], EXAMPLE_WINDOWS, strict=True):
        ax.set_title(f"{name} window ({WINDOWS[name].center:g}/{WINDOWS[name].width:g})", fontsize=10)
    if not slices:
        for ax in axes[0]:
            _say(ax, "no positive slices")
    for row, (caption, hu) in zip(axes, slices, strict=False):
        for ax, name in zip(row, EXAMPLE_WINDOWS, strict=True):
            if hu is None:
                _say(ax, "unreadable")
            else:
                ax.imshow(apply_window(hu, WINDOWS[name]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        first, _, rest = caption.partition("\n")
        row[0].set_ylabel("\n".join(filter(None, (_short(first), rest))), fontsize=9)
    return fig


# ---------------------------------------------------------------- the HTML page

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; }
.summary li { margin: 0.15em 0; }
"""


@dataclass
class Section:
    title: str
    text: str = ""
    image: str | None = None  # a PNG file name beside index.html
    table: pl.DataFrame | None = None
    table_id: str | None = None


def _cell(value) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:g}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def html_table(table: pl.DataFrame, table_id: str | None = None) -> str:
    """A plain HTML table: header row, one row per frame row; ints with thousands separators, null as '-'."""
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.iter_rows())
    return f"<table{ident}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def write_html(path: str | Path, title: str, summary: list[str], sections: list[Section]) -> Path:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<ul class="summary">' + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        if section.table is not None:
            parts.append(html_table(section.table, section.table_id))
        if section.image:
            name = html.escape(section.image)
            parts.append(f'<p><a href="{name}"><img src="{name}" alt="{html.escape(section.title)}"></a></p>')
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
