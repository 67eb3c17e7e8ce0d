"""Training logs: CSV files (one row per logged step, one per validation) and a PNG plot."""

from __future__ import annotations

import csv
import os
from pathlib import Path


class CsvLog:
    """Append rows (dicts with a fixed set of keys) to a CSV file, header written once."""

    def __init__(self, path: str | os.PathLike, fields: list[str]) -> None:
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, fields).writeheader()

    def write(self, row: dict) -> None:
        """Append one row (floats with 6 significant digits; fields not in the header ignored)."""
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a training CSV as floats (empty cells left out); [] if the file does not exist."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Plot train.csv (losses, smoothed) and val.csv (AJ, <delta_avg, OA) of a run to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "curves.png"
    train, val = read_csv(run_dir / "train.csv"), read_csv(run_dir / "val.csv")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if train:
        steps = [r["step"] for r in train]
        for key in ("total", "location", "location_apu", "visibility"):
            ys = [r.get(key, float("nan")) for r in train]
            axes[0].plot(steps, _smooth(ys), label=key)
        axes[0].set_yscale("log")
        axes[0].set_title("training loss (EMA-smoothed)")
        axes[1].plot(steps, _smooth([r.get("err_px", float("nan")) for r in train]), label="network")
        axes[1].plot(steps, _smooth([r.get("static_px", float("nan")) for r in train]), label="static")
        axes[1].set_title("position error on training clips (input px)")
    if val:
        vsteps = [r["step"] for r in val]
        for key in ("aj", "delta", "oa"):
            axes[2].plot(vsteps, [r.get(key, float("nan")) for r in val], marker="o", label=key)
        axes[2].set_title("validation (EMA model, query first)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _smooth(values: list[float], alpha: float = 0.05) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def truncate_after(path: str | os.PathLike, step: int) -> None:
    """Drop rows logged after `step` (a resumed run re-does those steps from its saved state)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    col = rows[0].index("step") if "step" in rows[0] else 0
    kept = [rows[0]] + [r for r in rows[1:] if r and float(r[col]) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)
