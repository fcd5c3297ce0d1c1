import sys

from paddlepalm.cli import main

sys.exit(main())
