from terminal_worker.main import main

raise SystemExit(main())
