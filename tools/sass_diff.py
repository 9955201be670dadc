#!/usr/bin/env python3
"""sass_diff.py [--by-body] OLD_OBJS NEW_OBJS — which GPU kernels changed between two builds, function by function.

OLD_OBJS / NEW_OBJS: comma-separated object files (e.g. build/core/cuda/*.cu.o of two revisions; a kernel
may move between files). Compares the SASS of every function (addresses and column padding stripped) and
prints how many differ. Use: a refactor of CUDA code on this CPU-only machine is proven not to change any
kernel when "0 differ" — so the GPU results of the old build still stand — without a GPU run.
--by-body: compare the multisets of function bodies, ignoring names (for a refactor that renames kernels,
e.g. drops a template parameter).

cuobjdump: $CUOBJDUMP, else on PATH, else /usr/local/cuda/bin. The CPU machine's toolkit lacks it;
`pip download nvidia-cuda-cuobjdump` and unzip the wheel (bin/cuobjdump inside).
"""
import os
import re
import shutil
import subprocess
import sys


def cuobjdump():
    for c in (os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"):
        if c and os.path.exists(c):
            return c
    sys.exit("sass_diff: cuobjdump not found (set CUOBJDUMP; see the docstring)")


def functions(objs, tool):
    out = {}
    for o in objs:
        text = subprocess.run([tool, "-sass", o], capture_output=True, text=True, check=True).stdout
        cur, buf = None, []
        for line in text.splitlines():
            m = re.match(r"\s*Function : (\S+)", line)
            if m:
                if cur:
                    out.setdefault(cur, []).append("\n".join(buf))
                cur, buf = m.group(1), []
            elif cur and re.match(r"\s+/\*[0-9a-f]{4,}\*/", line):
                buf.append(" ".join(re.sub(r"/\*[0-9a-f]+\*/", "", line).split()))
        if cur:
            out.setdefault(cur, []).append("\n".join(buf))
    return out


def main():
    args = sys.argv[1:]
    by_body = bool(args) and args[0] == "--by-body"
    if by_body:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    tool = cuobjdump()
    a = functions(args[0].split(","), tool)
    b = functions(args[1].split(","), tool)
    if by_body:
        ba = sorted(x for v in a.values() for x in v)
        bb = sorted(x for v in b.values() for x in v)
        same = ba == bb
        print(f"{len(ba)} bodies old, {len(bb)} new; {'identical' if same else 'they differ'} "
              f"({len(set(a) - set(b))} names only old, {len(set(b) - set(a))} only new)")
        return 0 if same else 1
    diff = sorted(k for k in set(a) | set(b) if sorted(a.get(k, [])) != sorted(b.get(k, [])))
    print(f"{len(a)} functions old, {len(b)} new; {len(diff)} differ")
    for k in diff[:40]:
        print(f"  {k} (old {len(a.get(k, []))}, new {len(b.get(k, []))})")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
