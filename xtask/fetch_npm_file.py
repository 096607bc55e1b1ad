"""Download a file, or copy one member out of a tarball, for `cargo xtask` (xtask/src/install.rs).

    python3 xtask/fetch_npm_file.py fetch URL OUT
    python3 xtask/fetch_npm_file.py extract TARBALL MEMBER OUT

Only the standard library, so it runs wherever the README's Python 3 does; proxies come from the
usual https_proxy variables. Both write OUT.part and rename it, so an interrupted run leaves
nothing that looks complete. The caller checks the pinned hashes.
"""

import os
import shutil
import sys
import tarfile
import urllib.request

mode, args = sys.argv[1], sys.argv[2:]
if mode == "fetch":
    url, out = args
    with urllib.request.urlopen(url, timeout=300) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
elif mode == "extract":
    tarball, member, out = args
    with tarfile.open(tarball) as t, t.extractfile(member) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
else:
    sys.exit(f"unknown mode {mode!r}: fetch or extract")
os.replace(out + ".part", out)
