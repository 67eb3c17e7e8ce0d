"""eval room of taptr_ros (DESIGN.md section 1): TAP-Vid metrics, the protocol runner, baselines.

Uses `tracking` and `model` as the node does, so what is scored is what runs. Positions are
pixels (x, y) of the evaluated video unless a function says "normalised".

* ``tapvid``          TAP-Vid metrics and query sampling (``compute_tapvid_metrics``), ``EvalError``
* ``runner``          ``evaluate_dataset(dataset, tracker, query_mode)`` -> ``EvalReport``
* ``engine_tracker``  the online engine as a runner tracker (the protocol's decoding)
* ``lk_baseline``     OpenCV pyramidal Lucas-Kanade with a forward-backward check
* ``real_footage``    unlabelled videos: forward-backward error, survival, still drift
"""
