from oh_lsp.cli import main

raise SystemExit(main())
