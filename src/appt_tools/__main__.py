from appt_tools.cli import main

raise SystemExit(main())
