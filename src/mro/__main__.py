"""``python -m mro`` (also what ``accelerate launch -m mro`` runs)."""

from mro.cli import main

raise SystemExit(main())
