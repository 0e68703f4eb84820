"""Parses a whole space's script (`cohort compile --script`) with sqlglot, in the sqlglot
dialect named, statement by statement; exits 1 naming every statement it cannot parse (or
parses only as an opaque command).

Usage: sql_parse.py <sqlglot dialect> <script.sql>

sqlglot has no grammar for SQL scripting (`BEGIN ... END` with `DECLARE`, `WHILE ... DO`,
`END WHILE`): inside such a block, each statement is parsed on its own and the control-flow
lines are counted, not parsed. Prints `parsed N statements (B in blocks), C control lines`.
"""

import sys

import sqlglot
from sqlglot.errors import ErrorLevel

CONTROL = ("BEGIN", "END", "DECLARE ", "WHILE ", "END WHILE")


def chunks(script):
    """(statement, in_block) for every statement; `;` at the end of a line ends one."""
    cur, depth = [], 0
    for line in script.splitlines():
        word = line.strip().rstrip(";").strip()
        if depth == 0 and word == "BEGIN":
            depth = 1
            continue
        if depth and word == "END":
            depth = 0
            continue
        if depth and word.startswith(CONTROL):
            yield word, None
            continue
        cur.append(line)
        if line.rstrip().endswith(";"):
            text = "\n".join(l for l in cur if not l.strip().startswith("--")).strip()
            if text:
                yield text[:-1], bool(depth)
            cur = []


def main():
    dialect, path = sys.argv[1:3]
    script = open(path, encoding="utf-8").read()
    parsed = in_blocks = control = 0
    failed = []
    for text, in_block in chunks(script):
        if in_block is None:
            control += 1
            continue
        try:
            trees = sqlglot.parse(text, read=dialect, error_level=ErrorLevel.RAISE)
            # An unknown statement becomes an opaque Command: not a parse.
            if any(isinstance(t, sqlglot.exp.Command) for t in trees):
                raise ValueError("parsed only as an opaque command")
            parsed += 1
            in_blocks += int(in_block)
        except Exception as e:
            failed.append("%s\n  in: %s" % (str(e).splitlines()[0], text[:300]))
    for f in failed:
        print("cannot parse:", f)
    print("parsed %d statements (%d in blocks), %d control lines" % (parsed, in_blocks, control))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
