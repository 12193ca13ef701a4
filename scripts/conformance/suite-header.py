"""Prints a suite for the conformance run: the task and data of SUITE (everything before its
`backends:`, with `../fixtures/` made absolute) followed by BACKENDS. The task is the suite's own,
so a recording made with it replays against that suite."""
import sys

suite, fixtures, backends = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(suite, encoding="utf-8").read()
head = text[: text.index("\nbackends:")]
sys.stdout.write(head.replace("../fixtures/", fixtures.rstrip("/") + "/") + "\nbackends:\n" + backends)
