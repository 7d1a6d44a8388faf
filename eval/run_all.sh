#!/usr/bin/env bash
# The full evaluation behind the tables in eval/README.md (default model, CPU).
# Writes JSON, Markdown and PNG files under eval/results/ (git-ignored).
# About 25-30 min on 2 cores: XQuAD zh->zh and en->zh (~5 min each), then
# the news proxy (3,000 articles x first 4 chunks, ~13 min).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-../shared}"
OUT=eval/results
mkdir -p "$OUT"
# THREADS=1 is much faster than 2 when other jobs share the cores (see eval/README.md)
T=(${THREADS:+--threads "$THREADS"})
XQ="$SHARED/datasets/xquad"
python eval/run.py --dataset "$XQ/xquad.zh.json" --mode all "${T[@]}" \
    --json "$OUT/xquad-zh-zh.json" --markdown "$OUT/xquad-zh-zh.md" --plot "$OUT/xquad-zh-zh.png"
python eval/run.py --dataset "$XQ/xquad.zh.json" --questions "$XQ/xquad.en.json" --mode all "${T[@]}" \
    --json "$OUT/xquad-en-zh.json" --markdown "$OUT/xquad-en-zh.md" --plot "$OUT/xquad-en-zh.png"
python eval/news_proxy.py --corpus "$SHARED/corpus" --articles 3000 --seed 0 --max-chunks-per-article 4 --mode all "${T[@]}" \
    --json "$OUT/news-proxy-3000.json" --markdown "$OUT/news-proxy-3000.md" --plot "$OUT/news-proxy-3000.png"
