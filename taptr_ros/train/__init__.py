"""train room of taptr_ros (DESIGN.md section 1): the TAPTRv2 training loop and its parts.

Positions are normalised by (W-1, H-1) of the network input (x, y); frames are indices.

* ``loop``      ``TrainConfig`` and ``train``: clips -> rollout -> losses -> AdamW, EMA, logs
* ``pretrain``  ``PretrainConfig`` and ``pretrain``: backbone + encoder on image pairs
* ``data``      training clips (synthetic or a TAP-Vid pickle) and their queries
* ``rollout``   the official windowed inference with gradients
* ``losses``    the official TAPTRv2 losses plus our feature-matching term
* ``ema``, ``state``, ``log``  EMA weights, resumable state and export, CSV logs and plots
* ``validate``  the quick validation that picks checkpoints
* ``report``    a checkpoint vs Lucas-Kanade and static on the held-out splits (README table)
"""
