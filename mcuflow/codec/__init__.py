"""Tensor codecs below the wire protocol (numpy only): the encodings INFER_SPARSE and OFFLOAD bodies
use (:mod:`~mcuflow.codec.encodings`) and the OFFLOAD compression (:mod:`~mcuflow.codec.compress`).
The numpy reference and the protocol both import them; neither imports the other."""
