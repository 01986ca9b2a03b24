from reco_sidecar.cli import main

raise SystemExit(main())
