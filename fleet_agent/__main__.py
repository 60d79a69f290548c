from fleet_agent.cli import main

raise SystemExit(main())
