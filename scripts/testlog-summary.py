#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sum meson's meson-logs/testlog.json files (one JSON object per line).

  testlog-summary.py LOG...          prints "PASSED FAILED SKIPPED"
  testlog-summary.py --text LOG...   prints "N passed, N failed, N skipped"

OK and EXPECTEDFAIL count as passed; FAIL, TIMEOUT, ERROR and UNEXPECTEDPASS
as failed; SKIP as skipped.  An unreadable line counts as a failure.
"""
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main(argv):
    text = False
    if argv and argv[0] == "--text":
        text, argv = True, argv[1:]
    passed = failed = skipped = 0
    for path in argv:
        try:
            f = open(path, encoding="utf-8", errors="replace")
        except OSError:
            failed += 1
            continue
        with f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    result = json.loads(line).get("result")
                except (ValueError, AttributeError):
                    failed += 1
                    continue
                if result in PASSED:
                    passed += 1
                elif result in SKIPPED:
                    skipped += 1
                else:
                    failed += 1
    if text:
        print(f"{passed} passed, {failed} failed, {skipped} skipped")
    else:
        print(passed, failed, skipped)


if __name__ == "__main__":
    main(sys.argv[1:])
