from nbecho.bench.run import main

raise SystemExit(main())
