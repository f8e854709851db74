"""Start the proxy: the same as `python -m aiproxy`."""

import sys

from aiproxy.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
