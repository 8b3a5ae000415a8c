"""`python -m daemon` is the same as the `graphnap` command."""

from daemon.cli.main import main

raise SystemExit(main())
