"""C code generation: a Jinja2 environment, identifier sanitising, and one template per artifact."""

from mcuflow.codegen.emit import render_library, render_link_config, render_packaging
from mcuflow.codegen.names import C_KEYWORDS, c_comment, c_identifier

__all__ = ["C_KEYWORDS", "c_comment", "c_identifier", "render_library", "render_link_config", "render_packaging"]
