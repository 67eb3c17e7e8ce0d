"""eval room of taptr_ros (see DESIGN.md section 1).

* ``tapvid``       TAP-Vid metrics and query sampling (``compute_tapvid_metrics``), ``EvalError``
* ``runner``       ``evaluate_dataset(dataset, tracker, query_mode)`` -> ``EvalReport``
* ``lk_baseline``  OpenCV pyramidal Lucas-Kanade with a forward-backward check
"""
