"""``python -m genrecnn``: the same CLI as the ``genrecnn`` command, for
environments where console scripts are not on PATH."""
import sys

from genrecnn.cli.main import main

sys.exit(main())
