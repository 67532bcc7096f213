import sys

from samband.cli import main

sys.exit(main())
