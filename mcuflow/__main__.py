import sys

from mcuflow.cli import main

sys.exit(main())
