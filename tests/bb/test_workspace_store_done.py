"""store_prep() hands out cached prepared statements (workspace/server/
store.c): they go back with store_done(), never sqlite3_finalize() (which
would free a statement the cache still hands out).  A source check, so that
code merged from elsewhere keeps the pairing.  store-metrics.c is the metrics
store's own layer (metrics.db, its own connections and statements, never
store_prep's), as store.c is the main database's."""
import os
import re

from harness.common import SOURCE_DIR


def test_no_sqlite3_finalize_outside_store_c():
    found = []
    for sub in ("workspace/server", "tests/unit", "tests/fuzz"):
        d = os.path.join(SOURCE_DIR, sub)
        for name in sorted(os.listdir(d)):
            if not name.endswith(".c") or name in ("store.c", "store-metrics.c",
                                                "backup.c"):
                continue
            with open(os.path.join(d, name), encoding="utf-8") as f:
                text = f.read()
            if sub != "workspace/server" and "store_prep" not in text:
                continue  # a test with its own SQLite handles
            for i, line in enumerate(text.splitlines(), 1):
                if re.search(r"\bsqlite3_finalize\s*\(", line):
                    found.append("%s/%s:%d" % (sub, name, i))
    assert found == [], "use store_done() for store_prep() statements: %s" % found
