"""``taptr bench engine|memory|node|transport|train``: performance benchmarks (ratios measured in one run).

* ``engine``: per-frame cost of the online engine (immediate, committed) against the offline
  reference and a naive loop that re-encodes the window, for presets x point counts.
* ``memory``: RSS / Python heap / CUDA memory over a long stream, points coming and going.
* ``node``: end-to-end latency of the real node process (image published -> tracks received)
  minus its model time.
* ``transport``: camera frames delivered between two processes with and without the shipped
  Fast DDS profile.
* ``train``: one training step's cost by stage and tracks per second, for several tracks per clip.

The scripts in benchmarks/ run the same code with the same options. On a 2-core CPU the
official preset at 512x512 costs about a second per frame: shrink the grid (--presets,
--points, --frames, --input-size) and state it. With a GPU, ``--device auto`` uses it.
"""

from __future__ import annotations

import argparse
import json
import sys


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _pipelines(text: str) -> tuple[str, ...]:
    names = _names(text)
    if not names or any(n not in ("on", "off") for n in names):
        raise argparse.ArgumentTypeError(f"{text!r}: give on, off or both (e.g. off,on)")
    return names


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _size(text: str) -> tuple[int, int]:
    """'WxH' or 'S' -> (height, width)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT or SIZE, got {text!r}") from exc
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 2:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT or SIZE, got {text!r}")
    return parts[1], parts[0]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
                   help="fp32, or fp16/bf16 autocast (CUDA only; the CPU keeps fp32)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--seed", type=int, default=0)


def run_engine(args: argparse.Namespace) -> int:
    from taptr_ros.bench.common import BenchError
    from taptr_ros.bench.engine import (
        EngineBenchOptions,
        format_engine_tables,
        run_engine_bench,
    )

    options = EngineBenchOptions(
        presets=args.presets, points=args.points, modes=args.modes, frames=args.frames,
        input_hw=args.input_size, image_hw=args.image_size, repeats=args.repeats,
        naive=not args.no_naive, naive_frames=args.naive_frames, naive_max_points=args.naive_max_points,
        device=args.device,
        precision=args.precision, threads=args.threads, cache_projections=not args.no_kv_cache,
        clock=args.clock, compile=args.compile, adds=args.adds, seed=args.seed)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if not args.quiet else (lambda line: None)
    try:
        result = run_engine_bench(options, log=log)
    except BenchError as exc:
        print(f"taptr bench engine: {exc}", file=sys.stderr)
        return 2
    print(format_engine_tables(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
    return 0


def run_memory(args: argparse.Namespace) -> int:
    from taptr_ros.bench.common import BenchError
    from taptr_ros.bench.memory import (
        MemoryBenchOptions,
        format_memory_tables,
        run_memory_bench,
    )

    options = MemoryBenchOptions(
        preset=args.preset, input_hw=args.input_size, image_hw=args.image_size, frames=args.frames,
        points=args.points, churn=args.churn, churn_every=args.churn_every, mode=args.mode,
        sample_every=args.sample_every, python_heap=not args.no_tracemalloc, device=args.device,
        precision=args.precision, threads=args.threads, seed=args.seed)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if not args.quiet else (lambda line: None)
    try:
        result = run_memory_bench(options, log=log)
    except BenchError as exc:
        print(f"taptr bench memory: {exc}", file=sys.stderr)
        return 2
    print(format_memory_tables(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
    return 0 if all(v["flat"] for v in result.summary().values()) else 1


def run_node(args: argparse.Namespace) -> int:
    from taptr_ros.bench.common import BenchError
    from taptr_ros.ros.tools.bench_node import (
        NodeBenchOptions,
        format_node_tables,
        run_node_bench,
    )

    log = (lambda line: print(line, file=sys.stderr, flush=True)) if not args.quiet else (lambda line: None)
    results, labels = [], []
    runs = [(pipeline, passes) for pipeline in args.pipeline for passes in args.passes]
    for pipeline, passes in runs:  # one node process each, one after the other
        options = NodeBenchOptions(
            preset=args.preset, input_hw=args.input_size, image_hw=args.image_size, rate=args.rate,
            frames=args.frames, warmup=args.warmup, points=args.points, mode=args.mode,
            open_loop=args.open_loop, device=args.device, threads=args.threads,
            pipeline=pipeline == "on", window_passes=passes, checkpoint=args.checkpoint)
        labels.append(f"pipeline {pipeline}" + (f" passes {passes}" if len(args.passes) > 1 else ""))
        try:
            results.append(run_node_bench(options, log=log))
        except BenchError as exc:
            print(f"taptr bench node: {exc}", file=sys.stderr)
            return 2
        print(format_node_tables(results[-1]) + "\n")
    if len(results) > 1:
        fps = [r.summary()["fps"] or 0.0 for r in results]
        print(f"fps ratio to {labels[0]}: " + ", ".join(
            f"{name} {f / fps[0]:.2f}x" if fps[0] else f"{name} -" for name, f in zip(labels, fps)))
    if args.json:
        with open(args.json, "w") as f:
            dump = [r.to_dict() for r in results]
            json.dump(dump[0] if len(dump) == 1 else dump, f, indent=1)
    return 0


def run_transport(args: argparse.Namespace) -> int:
    from taptr_ros.ros.tools.bench_transport import (
        format_transport,
        run_transport,
        runs_to_json,
    )

    runs = []
    for height, width in args.sizes:
        for profile in (False, True):
            run = run_transport(width, height, rate_hz=args.rate, frames=args.frames, profile=profile)
            print(f"{width}x{height} {'with' if profile else 'without'} profile: "
                  f"{run.received}/{run.sent}", file=sys.stderr, flush=True)
            runs.append(run)
    print(format_transport(runs))
    if args.json:
        with open(args.json, "w") as f:
            f.write(runs_to_json(runs))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from taptr_ros.train.step_cost import StepCostOptions, format_step_cost, measure_step_cost, rows_to_dict

    options = StepCostOptions(points=args.points, gather_backwards=args.gather_backward,
                              memory_formats=args.memory_format, frames=args.frames, size=args.size, preset=args.preset,
                              data_preset=args.data_preset, repeats=args.repeats, threads=args.threads,
                              match_weight=args.match_loss, init=args.init, profile=args.profile,
                              seed=args.seed)
    rows, table = measure_step_cost(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_step_cost(rows, options))
    if table:
        print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows_to_dict(rows, options), f, indent=1)
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(_size(part) for part in text.split(",") if part.strip())


def register(subparsers) -> None:
    """Adds ``bench`` (engine, memory, node) to the ``taptr`` command line."""
    p = subparsers.add_parser("bench", help="performance benchmarks (engine, memory, node, transport, train)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bench", required=True, metavar="BENCH")

    e = sub.add_parser("engine", help="engine vs offline reference vs naive loop, per frame",
                       description="Per-frame cost (encoder / decoder / other) of the online engine "
                                   "in immediate and committed mode, of the offline reference "
                                   "track_video and of a naive loop that re-encodes the window "
                                   "every frame; ratios against the performance targets "
                                   "(README, Performance).")
    e.add_argument("--presets", type=_names, default=("taptrv2", "small"),
                   help="comma-separated (default taptrv2,small)")
    e.add_argument("--points", type=_ints, default=(1, 50, 800, 5000),
                   help="comma-separated (default 1,50,800,5000)")
    e.add_argument("--modes", type=_names, default=("immediate", "committed"),
                   help="engine modes (default both)")
    e.add_argument("--frames", type=int, default=16,
                   help="frames per run, > window; the first window's frames are not timed (default 16)")
    e.add_argument("--input-size", type=_size, default=None, metavar="WxH",
                   help="network input for every preset (default: each preset's, 512 official)")
    e.add_argument("--image-size", type=_size, default=(480, 640), metavar="WxH",
                   help="camera frame size pushed (default 640x480)")
    e.add_argument("--repeats", type=int, default=1, help="runs per runner, medians (default 1)")
    e.add_argument("--no-naive", action="store_true", help="skip the naive re-encoding loop")
    e.add_argument("--naive-frames", type=int, default=2,
                   help="frames the naive loop is timed over (each costs W encodes + a window decode)")
    e.add_argument("--naive-max-points", type=int, default=100_000,
                   help="skip the naive loop above this many points")
    e.add_argument("--no-kv-cache", action="store_true",
                   help="engine without per-frame key/value caching (projects per window, as offline)")
    e.add_argument("--adds", type=int, default=0,
                   help="add this many points one by one at random timed frames, each at the latest or an "
                        "older buffered stamp (points joining committed windows; skips the naive loop)")
    e.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"),
                   help="auto: process CPU time on the CPU (stable on a shared machine), wall on CUDA")
    e.add_argument("--compile", action="store_true",
                   help="torch.compile backbone, encoder, decoder (every runner runs once untimed first)")
    e.add_argument("--quiet", action="store_true", help="no per-run progress lines on stderr")
    _common(e)
    e.set_defaults(func=run_engine)

    m = sub.add_parser("memory", help="memory over a long stream with points coming and going (must be flat)",
                       description="RSS, Python heap (tracemalloc) and CUDA memory of the engine over a "
                                   "long stream; exit status 1 if any of them grows.")
    m.add_argument("--preset", default="tiny", help="network preset (default tiny)")
    m.add_argument("--input-size", type=_size, default=(64, 64), metavar="WxH",
                   help="network input (default 64x64, so 10,000 frames take minutes on a CPU)")
    m.add_argument("--image-size", type=_size, default=(120, 160), metavar="WxH", help="camera frame size")
    m.add_argument("--frames", type=int, default=10_000, help="stream length (default 10000)")
    m.add_argument("--points", type=int, default=32, help="points alive at a time (default 32)")
    m.add_argument("--churn", type=int, default=4, help="points added and removed each churn step")
    m.add_argument("--churn-every", type=int, default=10, help="frames between churn steps")
    m.add_argument("--mode", default="immediate", choices=("immediate", "committed"))
    m.add_argument("--sample-every", type=int, default=100, help="frames between samples")
    m.add_argument("--no-tracemalloc", action="store_true", help="do not trace the Python heap")
    m.add_argument("--quiet", action="store_true", help="no per-sample lines on stderr")
    _common(m)
    m.set_defaults(func=run_memory)

    n = sub.add_parser("node", help="the real node process: end-to-end latency minus model time",
                       description="Runs taptr-tracker as a process, publishes 640x480 frames at 30 Hz, "
                                   "measures image published -> tracks received, and subtracts the "
                                   "node's model time (its /diagnostics); target overhead <= 5 ms.")
    n.add_argument("--preset", default="tiny", help="network preset (default tiny: model time under 33 ms)")
    n.add_argument("--input-size", type=_size, default=(64, 64), metavar="WxH",
                   help="network input (default 64x64)")
    n.add_argument("--image-size", type=_size, default=(480, 640), metavar="WxH",
                   help="camera frames (default 640x480)")
    n.add_argument("--rate", type=float, default=30.0, help="frames per second published (default 30)")
    n.add_argument("--frames", type=int, default=300, help="frames measured (default 300)")
    n.add_argument("--warmup", type=int, default=20, help="frames published first, not measured")
    n.add_argument("--points", type=int, default=49, help="points added at the first frame (a grid)")
    n.add_argument("--mode", default="immediate", choices=("immediate", "committed"))
    n.add_argument("--pipeline", type=_pipelines, default=("on",), metavar="on|off|off,on",
                   help="the node's pipeline parameter (default on): encode the next frame while one "
                        "is decoded, raising the --open-loop fps; 'off,on' runs both, one after the "
                        "other, and prints the fps ratio")
    n.add_argument("--passes", type=_ints, default=(0,), metavar="K[,K...]",
                   help="the node's window_passes parameter (default 0: the checkpoint's); '1,2' runs "
                        "both for every --pipeline value and prints the fps ratio")
    n.add_argument("--open-loop", action="store_true",
                   help="publish on the clock even when the previous frame is unanswered (drops count)")
    n.add_argument("--checkpoint", default=None, help="weights (default: seeded random weights of --preset)")
    n.add_argument("--quiet", action="store_true")
    n.add_argument("--device", default="auto", help="the node's device parameter")
    n.add_argument("--threads", type=int, default=1, help="the node's cpu_threads (default 1)")
    n.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    n.set_defaults(func=run_node)

    t = sub.add_parser("transport", help="camera frames delivered between processes, with and without "
                                         "the shipped Fast DDS profile",
                       description="Two fresh processes per run (best-effort rgb8 images at --rate): "
                                   "frames received / sent without the profile and with "
                                   "config/fastdds_shm.xml.")
    t.add_argument("--sizes", type=_sizes, default=((480, 640), (720, 1280)), metavar="WxH,...",
                   help="image sizes (default 640x480,1280x720)")
    t.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    t.add_argument("--frames", type=int, default=150, help="frames per run (default 150)")
    t.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    t.set_defaults(func=run_transport)

    r = sub.add_parser("train", help="one training step's cost by stage, for several tracks per clip",
                       description="Times data, forward, loss, backward and optimizer of the training "
                                   "step side by side for each --points count (median of --repeats "
                                   "steps after a warm-up) and prints tracks per second.")
    r.add_argument("--points", type=_ints, default=(48, 128, 256), help="tracks per clip (default 48,128,256)")
    r.add_argument("--frames", type=int, default=12, help="frames per clip (default 12)")
    r.add_argument("--size", type=int, default=None, help="network input side (default: the preset's)")
    r.add_argument("--preset", default="small", help="network preset (default small)")
    r.add_argument("--init", default="", help="checkpoint whose network to build (default: --preset)")
    r.add_argument("--data-preset", default="hard", help="synthetic preset of the clips (default hard)")
    r.add_argument("--repeats", type=int, default=5, help="measured steps per count (default 5)")
    r.add_argument("--match-loss", type=float, default=1.0, help="feature-matching weight (default 1)")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    r.add_argument("--gather-backward", type=_names, default=("fast",),
                   help="deformable gather CPU backwards to time side by side: fast, embedding_bag "
                        "(default fast)")
    r.add_argument("--memory-format", type=_names, default=("contiguous",),
                   help="layouts of the network's conv weights and frames to time side by side: "
                        "contiguous, channels_last (default contiguous)")
    r.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators")
    r.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=run_train)
