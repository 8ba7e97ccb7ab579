from asr.cli.main import main

raise SystemExit(main())
