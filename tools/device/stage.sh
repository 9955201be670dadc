#!/usr/bin/env bash
# stage.sh — on the GPU machine: gather what bundle.sh carried into /tmp/gq (survives while the machine
# is warm), join the GGUF halves (checking the sha256), and set up the environment. Source it:
# `. tools/device/stage.sh`. Our shared libraries are put on LD_LIBRARY_PATH through `gqsa`-only wrappers so
# that Python (torch) keeps the image's own libraries.
mkdir -p /tmp/gq/models /tmp/gq/bin /tmp/gq/lib /tmp/gq/wrap models
[ -d .devcarry/shared ] && cp -r .devcarry/shared /tmp/gq/
for p in model.part1 model.part2; do [ -f .devcarry/$p ] && cp .devcarry/$p /tmp/gq/; done
cp .devcarry/*.tokenizer.json /tmp/gq/models/ 2>/dev/null
for t in .devcarry/lib.tgz .devcarry/lib.txz; do [ -f $t ] && tar xf $t -C /tmp/gq; done
# lib.txz in two halves over two calls (bundle.sh 3 / 3b): keep each, unpack when both have arrived
if ls .devcarry/lib.txz.part* >/dev/null 2>&1; then
  mkdir -p /tmp/gq/parts && cp .devcarry/lib.txz.part* /tmp/gq/parts/
  if [ -f /tmp/gq/parts/lib.txz.partaa ] && [ -f /tmp/gq/parts/lib.txz.partab ]; then
    cat /tmp/gq/parts/lib.txz.partaa /tmp/gq/parts/lib.txz.partab | tar xJf - -C /tmp/gq && rm -rf /tmp/gq/parts
  else
    echo "stage.sh: first half of lib.txz kept in /tmp/gq/parts; carry 'bundle.sh 3b' next" >&2
  fi
fi
if [ -f /tmp/gq/model.part1 ] && [ -f /tmp/gq/model.part2 ] && [ ! -f /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  cat /tmp/gq/model.part1 /tmp/gq/model.part2 > /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf
fi
for f in /tmp/gq/models/*; do ln -sf "$f" models/; done
for b in /tmp/gq/bin/*; do
  [ -e "$b" ] || continue
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/gq/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' "$b" > /tmp/gq/wrap/$(basename "$b")
  chmod +x /tmp/gq/wrap/$(basename "$b")
done
[ -f .devcarry/GIT_REVISION ] && cp .devcarry/GIT_REVISION /tmp/gq/GIT_REVISION
[ -f /tmp/gq/GIT_REVISION ] && export GQSA_GIT_REVISION=$(cat /tmp/gq/GIT_REVISION)
export GQSA_DATA_ROOT=/tmp/gq/shared
export PATH=/tmp/gq/wrap:$PATH
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
