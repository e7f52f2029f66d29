"""Choosing link compression settings and training a model to live with them: the link sweep
(:mod:`mcuflow.compression.sweep`) and link fine-tuning (:mod:`mcuflow.compression.finetune`). Both drive
the exporter; the device-side rules they search over are in :mod:`mcuflow.codec.compress`."""
