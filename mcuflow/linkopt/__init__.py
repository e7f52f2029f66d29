"""Link compression: the export-time settings of OFFLOAD pruning and narrow codes, the
sweep that chooses them (:mod:`mcuflow.linkopt.sweep`) and fine-tuning the tail to live
with them (:mod:`mcuflow.linkopt.finetune`). The device-side rules are in
:class:`mcuflow.link.encodings.LinkConfig`."""

from mcuflow.linkopt.config import (
    FLOAT32_BYTES,
    config_header,
    link_from_export,
    offload_wire_bytes,
    resolve_link,
)

__all__ = ["FLOAT32_BYTES", "config_header", "link_from_export", "offload_wire_bytes", "resolve_link"]
