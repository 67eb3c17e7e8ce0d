"""What one training step costs, stage by stage, for several tracks-per-clip counts side by side.

``taptr bench train``: the stages of `taptr_ros.train.loop.train`'s step, timed one after the
other with the same model, optimiser and clip stream as a run: ``data`` (one synthetic clip
generated and preprocessed), ``forward`` (the windowed rollout), ``loss``, ``backward`` and
``optimizer`` (gradient clipping, AdamW, EMA). Every figure is a median over ``repeats`` steps
after one warm-up step, in milliseconds; ``tracks/s`` is supervised tracks per second of the
whole step, the quantity more tracks per clip buys (the backbone's cost is shared by all of a
clip's tracks). ``gather_backwards`` repeats the rows with the deformable gather's CPU backward
of `taptr_ros.model.deform_gather` ("fast") and `embedding_bag`'s own ("embedding_bag"), side by
side in one run, and ``memory_formats`` with the network and frames in torch's default
(contiguous, NCHW) layout and in ``channels_last`` (NHWC, what oneDNN's convolutions prefer on
CPUs). ``profile=True`` adds torch.profiler's table of the operators with the most
self CPU time in one step.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from taptr_ros.data import synthetic
from taptr_ros.model.deform_gather import cpu_backward
from taptr_ros.model.config import TaptrConfig
from taptr_ros.model.config import preset as network_preset
from taptr_ros.model.taptr import TAPTRv2
from taptr_ros.train.data import synthetic_clip
from taptr_ros.train.ema import ModelEma
from taptr_ros.train.losses import LossWeights, tracking_loss
from taptr_ros.train.loop import TrainConfig, make_optimizer
from taptr_ros.train.rollout import rollout

STAGES = ("data", "forward", "loss", "backward", "optimizer")
GATHER_BACKWARDS = ("fast", "embedding_bag")
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclasses.dataclass(frozen=True)
class StepCostOptions:
    """What to measure.

    Attributes:
        points: tracks per clip, one row each (per gather backward).
        gather_backwards: the deformable gather's CPU backwards to time, each a set of rows
            (`GATHER_BACKWARDS`).
        memory_formats: layouts of the network's 4-D weights and of the frames, each a set of
            rows (`MEMORY_FORMATS`).
        frames: frames per clip.
        size: network input side in pixels (None = the preset's).
        preset: network preset.
        data_preset: synthetic preset of the clips.
        repeats: measured steps per row (after one warm-up step).
        threads: torch CPU threads (0 = torch's default).
        match_weight: weight of the feature-matching loss (as in the campaign's runs).
        init: checkpoint to start from ("" = random weights; the cost is the same).
        profile: also return torch.profiler's top operators of one step.
        seed: clip stream seed.
    """

    points: tuple[int, ...] = (48, 128, 256)
    gather_backwards: tuple[str, ...] = ("fast",)
    memory_formats: tuple[str, ...] = ("contiguous",)
    frames: int = 12
    size: int | None = None
    preset: str = "small"
    data_preset: str = "hard"
    repeats: int = 5
    threads: int = 0
    match_weight: float = 1.0
    init: str = ""
    profile: bool = False
    seed: int = 0


@dataclasses.dataclass
class StepCostRow:
    """Median milliseconds per stage of one tracks-per-clip count and gather backward."""

    points: int
    ms: dict[str, float]
    gather_backward: str = "fast"
    memory_format: str = "contiguous"

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())

    @property
    def tracks_per_s(self) -> float:
        return 1000.0 * self.points / self.total_ms


def _timed(stage: str, times: dict[str, list[float]], fn: Callable[[], object]) -> object:
    start = time.perf_counter()
    value = fn()
    times[stage].append(1000.0 * (time.perf_counter() - start))
    return value


def measure_step_cost(options: StepCostOptions, *, log: Callable[[str], None] = lambda line: None
                      ) -> tuple[list[StepCostRow], str | None]:
    """Rows (per gather backward, one per ``options.points``) and, with ``profile``, the
    profiler table (text) of the last points count with the first gather backward."""
    unknown = set(options.gather_backwards) - set(GATHER_BACKWARDS)
    if unknown or not options.gather_backwards:
        raise ValueError(f"gather backwards {sorted(unknown) or '(none)'}: choose from {GATHER_BACKWARDS}")
    unknown = set(options.memory_formats) - set(MEMORY_FORMATS)
    if unknown or not options.memory_formats:
        raise ValueError(f"memory formats {sorted(unknown) or '(none)'}: choose from {tuple(MEMORY_FORMATS)}")
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.init:
        from taptr_ros.model.checkpoint import load_checkpoint

        net: TaptrConfig = load_checkpoint(options.init).config
    else:
        net = network_preset(options.preset)
    if options.size:
        net = dataclasses.replace(net, input_hw=(options.size, options.size))
    torch.manual_seed(options.seed)
    model = TAPTRv2(net).train()
    cfg = TrainConfig(lr=1e-4, backbone_lr=1e-4, clip_norm=1.0)
    optimizer = make_optimizer(model, cfg)
    ema = ModelEma(model, 0.995)
    weights = LossWeights(match=options.match_weight)
    h, w = net.input_hw
    rows, table = [], None
    runs = [(f, b, c) for f in options.memory_formats for b in options.gather_backwards for c in options.points]
    for fmt, backward, count in runs:
        layout = MEMORY_FORMATS[fmt]
        model.to(memory_format=layout)
        data_cfg = (synthetic.preset(options.data_preset, num_frames=options.frames, height=h, width=w,
                                     num_points=count),)
        times: dict[str, list[float]] = {s: [] for s in STAGES}
        for index in range(options.repeats + 1):
            step_times: dict[str, list[float]] = {s: [] for s in STAGES}
            clip = _timed("data", step_times, lambda: _laid_out(
                synthetic_clip(net, data_cfg, options.seed, index, count, 0.25), layout))
            optimizer.zero_grad(set_to_none=True)
            with cpu_backward(backward == "fast"):  # chosen when the forward builds the graph
                out = _timed("forward", step_times, lambda: rollout(model, clip.video, clip.query_xy, clip.query_t))
                terms = _timed("loss", step_times, lambda: tracking_loss(out, clip.gt_xy, clip.gt_occluded, weights))
                _timed("backward", step_times, lambda: terms.total.backward())

            def update() -> None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
                optimizer.step()
                ema.update(model)

            _timed("optimizer", step_times, update)
            if index:  # the first step warms up allocators and caches
                for stage in STAGES:
                    times[stage] += step_times[stage]
        row = StepCostRow(count, {s: statistics.median(v) for s, v in times.items()}, backward, fmt)
        rows.append(row)
        log(f"{count} tracks, {backward} gather backward, {fmt}: {row.total_ms:.0f} ms per step")
    if options.profile:
        with cpu_backward(options.gather_backwards[0] == "fast"):
            table = _profile_table(model, net, options, weights)
    return rows, table


def _laid_out(clip, layout: torch.memory_format):
    """The clip with its (T, 3, H, W) frames in `layout`."""
    return dataclasses.replace(clip, video=clip.video.contiguous(memory_format=layout))


def _profile_table(model: TAPTRv2, net: TaptrConfig, options: StepCostOptions, weights: LossWeights) -> str:
    from torch.profiler import ProfilerActivity, profile

    count = options.points[-1]
    h, w = net.input_hw
    data_cfg = (synthetic.preset(options.data_preset, num_frames=options.frames, height=h, width=w,
                                 num_points=count),)
    clip = synthetic_clip(net, data_cfg, options.seed, 10_000, count, 0.25)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = rollout(model, clip.video, clip.query_xy, clip.query_t)
        tracking_loss(out, clip.gt_xy, clip.gt_occluded, weights).total.backward()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def format_step_cost(rows: Sequence[StepCostRow], options: StepCostOptions) -> str:
    """The table: ms per stage, step total, tracks per second and its ratio to the first row."""
    base = rows[0].tracks_per_s if rows else 1.0
    head = f"{'tracks':>6} {'gather bwd':>13} {'layout':>13} " + " ".join(f"{s:>9}" for s in STAGES) + f" {'step ms':>8} {'tracks/s':>8} {'ratio':>6}"
    lines = [f"# taptr bench train: {options.preset}, {options.frames} frames, data {options.data_preset}, "
             f"median of {options.repeats} steps, {torch.get_num_threads()} threads", head]
    for row in rows:
        lines.append(f"{row.points:>6} {row.gather_backward:>13} {row.memory_format:>13} " + " ".join(f"{row.ms[s]:>9.0f}" for s in STAGES)
                     + f" {row.total_ms:>8.0f} {row.tracks_per_s:>8.1f} {row.tracks_per_s / base:>6.2f}")
    return "\n".join(lines)


def rows_to_dict(rows: Sequence[StepCostRow], options: StepCostOptions) -> dict:
    """JSON-ready: the options and, per row, ms per stage, step ms and tracks per second."""
    return {"options": dataclasses.asdict(options),
            "rows": [{"points": r.points, "gather_backward": r.gather_backward,
              "memory_format": r.memory_format, "ms": r.ms, "step_ms": r.total_ms, "tracks_per_s": r.tracks_per_s}
                     for r in rows],
            "threads": torch.get_num_threads(), "torch": torch.__version__}
