from ticketing_devstack.bench.run import main

raise SystemExit(main())
