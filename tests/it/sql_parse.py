"""Parses a whole space's script (`cohort compile --script`) with sqlglot, in the sqlglot
dialect named, statement by statement; exits 1 naming every statement it cannot parse (or
parses only as an opaque command).

Usage: sql_parse.py <sqlglot dialect> <script.sql>

sqlglot has no grammar for SQL scripting (`BEGIN ... END` with `DECLARE`, `WHILE ... DO`,
`END WHILE`; Snowflake's `EXECUTE IMMEDIATE $$ ... $$`): inside such a block, each statement
is parsed on its own and the control-flow lines are counted, not parsed. Prints `parsed N
statements (B in blocks), C control lines`.
"""

import re
import sys

import sqlglot
from sqlglot.errors import ErrorLevel

CONTROL = ("BEGIN", "END", "DECLARE", "WHILE ", "END WHILE")
# A declaration of a Snowflake Scripting block: `name TYPE DEFAULT value`.
DECLARATION = re.compile(r"^\w+ \w+ DEFAULT .*$")
# Functions of the engine that sqlglot does not know by name (so parses as anonymous): any
# other unknown function must be one the script defines.
KNOWN = {
    "snowflake": {"is_object"},
    "bigquery": set(),
    "spark": {"btrim", "conv", "shiftrightunsigned", "schema_of_variant", "try_to_timestamp"},
    "databricks": {"btrim", "conv", "shiftrightunsigned", "schema_of_variant", "try_to_timestamp"},
}
DEFINES = re.compile(r"CREATE (?:OR REPLACE )?(?:TEMPORARY |TEMP )?FUNCTION (\w+)", re.I)
# The line that opens a block, and the line that closes it.
OPENING = {"BEGIN": "END", "EXECUTE IMMEDIATE $$": "$$"}
# The delimiters of a function body (Snowflake `$$`, BigQuery `r"""`), which holds code of
# another language whose lines may end with `;`.
BODY = re.compile(r'\$\$|"""')


def chunks(script):
    """(statement, in_block) for every statement; `;` at the end of a line ends one, but
    inside a function body. A block runs from `BEGIN` to `END`, or from Snowflake's
    `EXECUTE IMMEDIATE $$` to `$$`; its control lines come as (line, None)."""
    cur, closing, in_body = [], None, False
    for line in script.splitlines():
        word = line.strip().rstrip(";").strip()
        if not in_body and closing is None and word in OPENING:
            closing = OPENING[word]
            continue
        if closing is not None and word == closing:
            closing = None
            continue
        if closing is not None and (word.startswith(CONTROL) or DECLARATION.match(word)):
            yield word, None
            continue
        if len(BODY.findall(line)) % 2 == 1:
            in_body = not in_body
        cur.append(line)
        if not in_body and line.rstrip().endswith(";"):
            text = "\n".join(l for l in cur if not l.strip().startswith("--")).strip()
            if text:
                yield text[:-1], closing is not None
            cur = []


def main():
    dialect, path = sys.argv[1:3]
    script = open(path, encoding="utf-8").read()
    known = KNOWN[dialect] | {n.lower() for n in DEFINES.findall(script)}
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
            unknown = {
                f.name.lower()
                for t in trees
                for f in t.find_all(sqlglot.exp.Anonymous)
            } - known
            if unknown:
                raise ValueError("calls functions neither %s nor the script has: %s"
                                 % (dialect, ", ".join(sorted(unknown))))
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
