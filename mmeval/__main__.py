from mmeval.cli import main

raise SystemExit(main())
