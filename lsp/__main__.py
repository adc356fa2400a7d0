"""``python -m lsp``: run the codesearch language server (stdio, or ``--tcp PORT`` on 127.0.0.1)."""

from lsp.main import main

raise SystemExit(main())
