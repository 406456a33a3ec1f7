# Runs one MicroPython test function; driven by tests/pytest_mp.py.
#   micropython _mprun.py <module> <function>
# Prints a closing marker line so the plugin can tell a clean pass from an interpreter that
# exited early. Exit codes: 0 pass, 1 fail, 3 skip.
import sys


def main():
    mod_name, fn_name = sys.argv[1], sys.argv[2]
    try:
        mod = __import__(mod_name)
        fn = getattr(mod, fn_name)
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, Ctrl-C still ends us
        if type(e).__name__ == "SkipTest":
            print("\n@@MPTEST SKIP", e)
            sys.exit(3)
        print("\n@@MPTEST FAIL")
        sys.print_exception(e)
        sys.exit(1)
    print("\n@@MPTEST PASS")


main()
