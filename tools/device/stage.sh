#!/usr/bin/env bash
# stage.sh — on the GPU machine: gather what bundle.sh carried into /tmp/gq (survives while warm),
# join the GGUF halves, set up libraries. Source it: `. tools/device/stage.sh`.
mkdir -p /tmp/gq/models /tmp/gq/bin /tmp/gq/lib models
[ -d .devcarry/shared ] && cp -r .devcarry/shared /tmp/gq/
[ -f .devcarry/model.part1 ] && cp .devcarry/model.part1 /tmp/gq/
[ -f .devcarry/model.part2 ] && cp .devcarry/model.part2 /tmp/gq/
cp .devcarry/*.tokenizer.json /tmp/gq/models/ 2>/dev/null; ln -sf /tmp/gq/models/*.tokenizer.json models/ 2>/dev/null
[ -d .devcarry/bin ] && cp .devcarry/bin/* /tmp/gq/bin/ && cp .devcarry/lib/* /tmp/gq/lib/ 2>/dev/null
if [ -f /tmp/gq/model.part1 ] && [ -f /tmp/gq/model.part2 ] && [ ! -f /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  cat /tmp/gq/model.part1 /tmp/gq/model.part2 > /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf
fi
mkdir -p models && ln -sf /tmp/gq/models/SmolLM2-135M-Instruct.Q4_1.gguf models/ 2>/dev/null
export LD_LIBRARY_PATH=/tmp/gq/lib:${LD_LIBRARY_PATH:-}
export GQSA_DATA_ROOT=/tmp/gq/shared
export PATH=/tmp/gq/bin:$PATH
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
