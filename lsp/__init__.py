"""lsp: the codesearch language server (pygls). Thin handlers over codesearch's public API.

``lsp.server``: the handlers, one per LSP method; ``lsp.convert``: codesearch results to
LSP types; ``lsp.options``: the initialization options; ``lsp.main``: start-up (stdio or TCP
on 127.0.0.1). Run it with ``codesearch serve`` or ``python -m lsp``. Imports only ``codesearch``.
"""

from codesearch import __version__

__all__ = ["__version__"]
