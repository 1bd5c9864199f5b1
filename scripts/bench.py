"""The benchmark table (same as ``restoregen bench``); see ``restoregen/bench.py``."""

from restoregen.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
