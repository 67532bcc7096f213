# Runs firmware test functions on the MicroPython unix port:
#   micropython runner.py MODULE [TEST ...]
# One line per test, prefixed with a record separator so that pytest can
# tell results apart from what the tests print.

import gc
import sys

SEP = "\x1e"


def main():
    name = sys.argv[1]
    names = sys.argv[2:]
    mod = __import__(name)
    if not names:
        names = [n for n in dir(mod) if n.startswith("test_")]
    failed = 0
    for n in names:
        gc.collect()
        try:
            getattr(mod, n)()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next test runs
            failed += 1
            print(SEP + "FAIL " + n)
            sys.print_exception(e)
            print(SEP + "END")
            continue
        print(SEP + "PASS " + n + " " + str(gc.mem_alloc()))
    print(SEP + "DONE %d %d" % (len(names), failed))


main()
