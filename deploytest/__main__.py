from deploytest.cli import main

raise SystemExit(main())
