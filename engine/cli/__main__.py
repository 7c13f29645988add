"""``python -m engine.cli``: the ``iotengine`` command."""

from engine.cli import main

raise SystemExit(main())
