"""Training for Granite-style encoders (Granite Embedding, arXiv 2502.20204) on top of granite_index.

Modules: ``args`` (TrainingArgs), ``data`` (readers, sampler, perturbation), ``losses``,
``modeling`` (BiEncoder, SpladeModel, truncate_layers), ``retromae`` (RetroMAE), ``mining``
(hard negatives through a Collection), ``stages`` + ``runner`` (the one training loop,
``train``), ``checkpoint``, ``merging``, ``evaluation`` (evaluate, model cards), ``recipes`` and
``cli`` (``granite-train``).
"""
