"""`make bench`: runs every tests/bench/bench_*.py main() in turn and prints its figures."""

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv):
    only = argv[1:]
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    failed = 0
    for name in names:
        if only and not any(o in name for o in only):
            continue
        print(f"== {name}", flush=True)
        t = time.monotonic()
        try:
            importlib.import_module(name).main()
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed += 1
            print(f"{name} FAILED: {type(e).__name__}: {e}", flush=True)
        print(f"({time.monotonic() - t:.1f} s)\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
