"""Sums a PostgreSQL statement log (log_min_duration_statement = 0) by statement.

Each line `duration: X ms  parse|bind|execute|statement NAME: SQL` counts towards its statement,
the SQL with its literals, numbers and parameter lists folded, so an IN list of any length is
one statement. Prints the total by phase and how many executions were parsed (prepared) first, then the statements taking most of the time with
their executions and their time per phase (bind is where a custom plan is made).

    python3 benches/statement_log.py /tmp/atlas_drain_profile/statements.log [TOP]
"""

import collections
import re
import sys

LINE = re.compile(r"duration: ([\d.]+) ms  (parse|bind|execute|statement) ?[^:]*: (.*)")


def folded(sql: str) -> str:
    sql = re.sub(r"'[^']*'", "'?'", sql)
    sql = re.sub(r"\b\d+\b", "N", sql)
    sql = re.sub(r"(\$N, )+\$N", "$..", sql)
    sql = re.sub(r"(\(\$N, N\), )+\(\$N, N\)", "($N, N)..", sql)
    return sql[:110]


def main() -> None:
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    total = collections.Counter()
    by_phase = collections.defaultdict(collections.Counter)
    runs = collections.Counter()
    parses = collections.Counter()
    phases = collections.Counter()
    with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
        for line in log:
            m = LINE.search(line)
            if not m:
                continue
            ms, phase, sql = float(m.group(1)), m.group(2), folded(m.group(3))
            total[sql] += ms
            by_phase[sql][phase] += ms
            phases[phase] += ms
            if phase in ("execute", "statement"):
                runs[sql] += 1
            elif phase == "parse":
                parses[sql] += 1
    whole = sum(total.values()) or 1.0
    print(f"statements' time {whole:.0f} ms: " + ", ".join(f"{p} {ms:.0f}" for p, ms in phases.most_common()))
    print(f"executions {sum(runs.values())}, parses {sum(parses.values())} (a parse is a prepare: a text new to its connection, or evicted from its cache)")
    for sql, ms in total.most_common(top):
        n = max(runs[sql], 1)
        split = " ".join(f"{p} {v / n:.3f}" for p, v in sorted(by_phase[sql].items()))
        print(f"{ms:8.0f} ms {100 * ms / whole:5.1f}%  n={runs[sql]:6d} parsed={parses[sql]:6d}  per run: {split}  {sql}")


if __name__ == "__main__":
    main()
