"""The numpy reference: the integer contract the generated C matches bit for bit (:mod:`.int8`),
host-side value conversions (:mod:`.quantization`), the OFFLOAD compression as the device applies it
(:mod:`.offload`) and the float host tail of ``tail.npz`` (:mod:`.float_tail`)."""

from mcuflow.reference.float_tail import tail_forward
from mcuflow.reference.int8 import ReferenceResult, exit_decision, linear, requantize, run
from mcuflow.reference.offload import LinkResult, link_offload
from mcuflow.reference.quantization import dequantize, pixels_to_input, quantize_input

__all__ = [
    "LinkResult",
    "ReferenceResult",
    "dequantize",
    "exit_decision",
    "linear",
    "link_offload",
    "pixels_to_input",
    "quantize_input",
    "requantize",
    "run",
    "tail_forward",
]
