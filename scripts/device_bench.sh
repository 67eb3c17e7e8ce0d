#!/usr/bin/env bash
# GPU checks for a bare GPU machine (one H200; Python with torch, no ROS): the CUDA tests, then
# `taptr bench engine` for the official taptrv2 preset at 512x512 with 800 and 5000 points in
# fp32 and fp16 (the paper: 69.1 and 14.6 FPS on an A100). Writes OUTDIR/cuda_tests.log,
# OUTDIR/bench_<precision>.txt (tables) and .json. About 3 of its 4 minutes with the defaults.
#
#   scripts/device_bench.sh OUTDIR
#
# Knobs (environment): BENCH_DEVICE [cuda], BENCH_PRESET [taptrv2], BENCH_SIZE [512x512],
# BENCH_POINTS [800,5000], BENCH_PRECISIONS [fp32 fp16], BENCH_FRAMES [16], PYTHON [python3].
set -euo pipefail
out=${1:?usage: scripts/device_bench.sh OUTDIR}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
mkdir -p "$out"
# the CUDA-only tests (they skip without a GPU; rc 5 = none collected is not a failure)
set +e
"$py" -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/model/test_taptr.py::test_cuda_matches_cpu tests/model/test_deform_attn.py::test_cuda_matches_cpu \
  tests/tracking/test_feature_cache.py::test_cuda_device_argument_keeps_everything_on_the_gpu \
  tests/model/test_fast_path.py::test_fp16_autocast_keeps_tracks_within_the_stated_tolerance \
  > "$out/cuda_tests.log" 2>&1
rc=$?
set -e
tail -n 3 "$out/cuda_tests.log"
for precision in ${BENCH_PRECISIONS:-fp32 fp16}; do
  "$py" scripts/taptr bench engine --device "${BENCH_DEVICE:-cuda}" --presets "${BENCH_PRESET:-taptrv2}" \
    --input-size "${BENCH_SIZE:-512x512}" --points "${BENCH_POINTS:-800,5000}" --frames "${BENCH_FRAMES:-16}" \
    --precision "$precision" --no-naive --quiet --json "$out/bench_$precision.json" \
    | tee "$out/bench_$precision.txt"
done
exit $(( rc == 5 ? 0 : rc ))
