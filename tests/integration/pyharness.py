"""pyharness - what the Python integration tests share: check() and its
failure, and main()'s run of the test functions with the clean-up (every
process the test started killed by its PID, the temporary directory kept
with its logs printed on failure, removed otherwise) and the scan of the
logs for sanitizer reports (the build-asan run). Imported by
test_metrics.py and test_backup.py from their own directory."""
import os
import re
import shutil
import subprocess


class Fail(Exception):
    pass


checks = 0


def check(cond, what, detail=""):
    """Count one check; raise Fail naming WHAT (and DETAIL) when COND is false."""
    global checks
    checks += 1
    if not cond:
        raise Fail(f"{what}{': ' + str(detail) if detail else ''}")


def run(tests, tmp, procs):
    """Run TESTS (functions) in order, then clean up PROCS and TMP; the
    exit status: 0 when every check passed."""
    failed = None
    try:
        for t in tests:
            t()
            print(f"ok {t.__name__}")
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                text = open(os.path.join(tmp, f), errors="replace").read()
                check(not re.search(r"ERROR: \w+Sanitizer|runtime error:", text),
                      f"no sanitizer report in {f}", text[-3000:])
    except (Fail, subprocess.TimeoutExpired, KeyError) as e:
        failed = e
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if failed:
        print(f"FAIL: {failed!r}")
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print(f"--- {f}\n" + open(os.path.join(tmp, f), errors="replace").read()[-3000:])
        print("kept " + tmp + " for a look")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{checks} checks passed")
    return 0
