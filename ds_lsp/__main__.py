from ds_lsp.cli import main

raise SystemExit(main())
