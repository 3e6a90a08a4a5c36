from appt_tools.surfaces.cli import main

raise SystemExit(main())
