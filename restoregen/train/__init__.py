"""Training on Accelerate: the loop core (:mod:`.engine`), recipes by ``model_type``
(:mod:`.recipes`), checkpoints, EMA, schedules, and the ``train``/``test`` commands."""
