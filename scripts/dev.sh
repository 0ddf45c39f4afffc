#!/usr/bin/env bash
# granite-index developer entry point.
#   scripts/dev.sh demo [BEIR_DIR]   set up .venv, index a BEIR dataset (default: SciFact from
#                                    ../shared/data) for BM25 + dense hybrid search (fusion fitted
#                                    on its train split if any), evaluate its test queries, show
#                                    an example
#   scripts/dev.sh test [PYTEST_ARGS] set up .venv if needed, run the test suite
#   scripts/dev.sh lint              ruff check, ruff format --check, the architecture contracts
#                                    (lint-imports: layers, no cycles, kernels alone)
#   scripts/dev.sh setup             only create / update .venv
# TORCH_SPEC overrides the torch requirement (default: the CPU build torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
DATA=${GRANITE_DATA:-../shared/data}

setup() {
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  local stamp=.venv/.granite-setup
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setting up .venv (one time; a few minutes)..." >&2
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
    .venv/bin/python -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  demo)
    setup
    ds=${1:-$DATA/beir/scifact}
    name=$(basename "$ds")
    # hybrid BM25 + dense; the fusion is fitted on the train split where the dataset has one
    fit=()
    [ -f "$ds/qrels/train.tsv" ] && fit=(--fit-on train)
    .venv/bin/granite-index eval "$ds" --collection "runs/$name" --mode hybrid --legs bm25,dense \
      "${fit[@]}" --example
    ;;
  test)
    setup
    exec .venv/bin/python -m pytest "$@"
    ;;
  lint)
    setup
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/lint-imports
    ;;
  *)
    sed -n '2,10p' "$0"; exit 2 ;;
esac
