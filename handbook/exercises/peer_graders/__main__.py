"""``python -m handbook.exercises.peer_graders``: measure, make the peers' venv, or (inside the
wrapper) contain one tool's run and pool otter's runs."""

from handbook.exercises.peer_graders import main

raise SystemExit(main())
