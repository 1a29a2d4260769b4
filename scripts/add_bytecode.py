"""Add checked-hash bytecode for every module in a Lambda deployment zip.

    .venv/bin/python scripts/add_bytecode.py build/package/deployment.zip

Lambda's /var/task is read-only, so without shipped .pyc files every cold start compiles app.py,
chalicelib/ and Chalice's own app.py from source (about 60 ms of a cold start here). Checked-hash
bytecode is used only while it matches its source, so it can never run stale code. The Python
that runs this must be the Lambda's (3.12): `chalice package` ties the runtime to it as well.
"""
from __future__ import annotations

import importlib.util
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path


def add_bytecode(archive: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        names = set(zf.namelist())
        sources = [n for n in names if n.endswith(".py")]
        added = 0
        for name in sources:
            pyc = importlib.util.cache_from_source(name)
            if pyc in names:
                continue
            source = Path(tmp) / name
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(zf.read(name))
            target = Path(tmp) / pyc
            py_compile.compile(str(source), cfile=str(target), dfile=name, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            zf.write(target, pyc)
            added += 1
        return added


if __name__ == "__main__":
    count = add_bytecode(Path(sys.argv[1]))
    print(f"added bytecode for {count} modules to {sys.argv[1]}")
