"""lsp: the codesearch language server (pygls). Thin handlers over codesearch's public API.

The server itself arrives with the language-server issue; this package exists now so one
distribution installs both, and it imports only ``codesearch``.
"""

from codesearch import __version__

__all__ = ["__version__"]
