import sys

from t2vrt.cli import main

sys.exit(main())
