"""``taptr parity [FIXTURE.npz]``: reproduce the official TAPTRv2 forward of a parity fixture.

Builds the ``taptrv2`` preset at the fixture's frame size (nothing resized or re-normalised),
fills it with the fixture's deterministic weights on the official key names (loaded through
`taptr_ros.model.checkpoint`), runs the fixture's video and queries, and compares every
recorded stage with the fixture's tolerances. Exit status 0 only if every array is within them.

Without FIXTURE it checks case A, shipped in ``tests/fixtures/parity/`` of the repository.
Without ``--shared-dir`` the weights come from our `taptr_ros.model.parity_weights`, the key
list from ``tests/fixtures/parity/`` (or the fixture's folder) and the check from our
`taptr_ros.model.parity_check`. With ``--shared-dir DIR`` (e.g. ``../shared/parity``) the
fixture folder's own ``fill_weights.py``, ``check_parity.py`` and key list are used instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from taptr_ros.model import parity_check, parity_weights
from taptr_ros.model.checkpoint import load_state_strict, map_official_state_dict
from taptr_ros.model.config import preset
from taptr_ros.model.taptr import TAPTRv2, track_video
from taptr_ros.model.windowing import point_masks

KEYS_TSV = "taptrv2_state_dict_keys.tsv"
# Case A as shipped with the repository (present in a checkout / editable install).
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity"
SHIPPED_FIXTURE = SHIPPED_DIR / "taptrv2_parity_caseA.npz"


def _import_from(folder: str, name: str):
    path = os.path.join(folder, f"{name}.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: pass --shared-dir, the folder holding "
                                f"fill_weights.py, check_parity.py and {KEYS_TSV}")
    spec = importlib.util.spec_from_file_location(f"_taptr_parity_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keys_tsv(fixture_path: str) -> str:
    """The official key list: the shipped one, else the one beside the fixture."""
    for path in (SHIPPED_DIR / KEYS_TSV, Path(fixture_path).parent / KEYS_TSV):
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"{KEYS_TSV} found neither in {SHIPPED_DIR} nor beside {fixture_path}: "
                            f"pass --shared-dir")


def build_fixture_model(fixture: dict, device: str, shared_dir: str | None = None,
                        keys_path: str | None = None) -> TAPTRv2:
    """taptrv2 preset at the fixture's (H, W), with the fixture's synthetic weights.

    The weights come from `shared_dir`'s ``fill_weights.py`` and key list when given, else from
    our `parity_weights` on the key list at `keys_path`.
    """
    h, w = fixture["video"].shape[-2:]
    model = TAPTRv2(preset("taptrv2", input_hw=(int(h), int(w))))
    seed = int(fixture["fill_seed"])
    if shared_dir is not None:
        fill = _import_from(shared_dir, "fill_weights")
        official = fill.fill_state_dict(fill.read_shapes_tsv(os.path.join(shared_dir, KEYS_TSV)), seed)
    else:
        arrays = parity_weights.fill_official(parity_weights.read_shapes_tsv(keys_path), seed)
        official = {k: torch.from_numpy(v) for k, v in arrays.items()}
    load_state_strict(model, map_official_state_dict(official), "fixture weights")
    return model.to(device).eval()


@torch.no_grad()
def run_fixture(model: TAPTRv2, fixture: dict, device: str) -> dict[str, np.ndarray]:
    """Every array of the fixture's format computed by our network, as numpy."""
    out: dict[str, torch.Tensor] = {}
    video = torch.from_numpy(fixture["video"]).to(device)
    xy = torch.from_numpy(fixture["query_xy_norm"]).to(device)
    query_t = torch.from_numpy(fixture["query_t"]).to(device)
    num_frames, (height, width) = video.shape[0], video.shape[-2:]
    shapes = model.level_shapes

    raw = model.backbone.features(video[:1])
    proj = model.backbone.project(raw)
    out[f"f0_backbone_l{len(raw) - 1}"] = raw[-1][0]
    pos = model.encoder.position_maps(shapes, device=device)
    memory0 = model.encoder(proj)
    for lvl, fmap in enumerate(model.level_maps(memory0)):
        out[f"f0_proj_l{lvl}"], out[f"pos_sine_l{lvl}"], out[f"f0_memory_l{lvl}"] = proj[lvl][0], pos[lvl], fmap[0]

    start_mem = torch.cat([model.encode_frames(video[t:t + 1]) for t in query_t.tolist()])
    out["init_query_sampled"] = model.sample_query_features(start_mem, xy)
    f0, ref0 = model.init_queries(start_mem, xy)
    out["init_query_feat"], out["init_ref_unsig"], out["init_query_pos"] = f0, ref0, model.query_pos(ref0)
    out["update_mask"] = point_masks(query_t, 0, num_frames - 1)[1].T

    windows: list = []
    result = track_video(model, video, xy, query_t,
                         on_window=lambda k, a, b, inp, o: windows.append((a, b, inp, o)))
    out["win_ranges"] = torch.tensor([[a, b] for a, b, _, _ in windows], dtype=torch.int64)
    out["win_in_feat"] = torch.stack([inp.content for _, _, inp, _ in windows])
    out["win_in_ref_unsig"] = torch.stack([inp.ref for _, _, inp, _ in windows])
    w0 = windows[0][3]
    for name, arr in (("hs", w0.hs), ("layer_feat", w0.layer_feat), ("apu_delta", w0.apu_delta),
                      ("pos_apu", w0.pos_apu), ("pos_delta", w0.pos), ("vis_logits", w0.vis_logits)):
        out[f"win0_{name}"] = arr
    out["win_last_pos"] = torch.stack([o.pos[-1] for *_, o in windows])
    out["win_last_vis_logits"] = torch.stack([o.vis_logits[-1] for *_, o in windows])
    out["win_last_hs"] = torch.stack([o.hs[-1] for *_, o in windows])
    out["pred_boxes"], out["pred_xy_norm"] = result.boxes, result.xy_norm
    out["pred_vis_logits"], out["pred_visible"] = result.vis_logits, result.visible
    arrays = {k: v.detach().cpu().numpy() for k, v in out.items()}
    scale = np.array([width - 1, height - 1], dtype=np.float64)
    arrays["pred_xy_px"] = arrays["pred_xy_norm"].astype(np.float64) * scale
    return arrays


STAGES = ("f0_backbone", "f0_proj", "pos_sine", "f0_memory", "init_", "win0_", "win_in_", "win_ranges",
          "win_last_", "update_mask", "pred_")


def _stage_order(name: str) -> tuple[int, str]:
    return next((i for i, p in enumerate(STAGES) if name.startswith(p)), len(STAGES)), name


def run(args: argparse.Namespace) -> int:
    """Entry point of ``taptr parity``; returns the exit code."""
    fixture_path = os.path.abspath(args.fixture or SHIPPED_FIXTURE)
    shared_dir = os.path.abspath(args.shared_dir) if args.shared_dir else None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        fixture = dict(np.load(fixture_path))
        check = _import_from(shared_dir, "check_parity") if shared_dir else parity_check
        keys_path = None if shared_dir else keys_tsv(fixture_path)
        model = build_fixture_model(fixture, args.device, shared_dir, keys_path)
    except (OSError, KeyError, ValueError) as exc:
        print(f"taptr parity: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    produced = run_fixture(model, fixture, args.device)
    elapsed = time.perf_counter() - started
    if args.save:
        np.savez_compressed(args.save, **produced)
    rows = sorted(check.compare(fixture, produced), key=lambda r: _stage_order(r[0]))
    compared = {r[0] for r in rows}
    missing = sorted(k for k in fixture if k not in check.NOT_OUTPUTS and k not in compared)
    if not rows and not missing:
        print(f"taptr parity: {fixture_path} holds no reference arrays to compare", file=sys.stderr)
        return 1
    video = fixture["video"]
    print(f"fixture {fixture_path}: T={video.shape[0]} {video.shape[3]}x{video.shape[2]} "
          f"N={fixture['query_t'].shape[0]} seed={int(fixture['fill_seed'])}; "
          f"forward {elapsed:.2f} s on {args.device}")
    print(f"weights and check: {'the files of ' + shared_dir if shared_dir else 'ours'}")
    nfail = 0
    for name, ok, err, detail in rows:
        nfail += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:22s} max_abs_err {err:.3e}  ({detail})")
    for name in missing:
        nfail += 1
        print(f"FAIL  {name:22s} not produced")
    print(f"{len(rows) - nfail + len(missing)} passed, {nfail} failed")
    return 0 if nfail == 0 else 1


def register(subparsers) -> None:
    """Adds ``parity`` to the ``taptr`` command line."""
    p = subparsers.add_parser("parity", help="check the network against an official TAPTRv2 parity fixture",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fixture", nargs="?", default=None,
                   help=f"fixture .npz (default: case A shipped in the repository, {SHIPPED_FIXTURE})")
    p.add_argument("--shared-dir", default=None,
                   help="use this folder's fill_weights.py, check_parity.py and key list "
                        "(default: our own fill and check, and the shipped key list)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; TF32 is switched off on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--save", default=None, help="also write our arrays to this .npz")
    p.set_defaults(func=run)
