"""eval room of taptr_ros (see DESIGN.md section 1).

* ``tapvid``       TAP-Vid metrics and query sampling (``compute_tapvid_metrics``), ``EvalError``
* ``runner``       ``evaluate_dataset(dataset, tracker, query_mode)`` -> ``EvalReport``
* ``lk_baseline``  OpenCV pyramidal Lucas-Kanade with a forward-backward check
* ``bench_engine`` ``taptr bench engine``: engine vs offline reference vs naive loop, per frame
* ``bench_memory`` ``taptr bench memory``: RSS / Python heap / CUDA memory over a long stream
* ``bench_naive``  the naive re-encode-the-window online loop (benchmark baseline only)
* ``bench_common`` benchmark models, streams, clocks, stage timers, tables
"""
