#!/usr/bin/env bash
# Pack what eval/bench_gpu.py needs on a lent GPU machine (Python 3.12 with torch,
# transformers and sentence-transformers already there) into .gpu/, which git ignores:
#   .gpu/bundle.tar.xz  the default model's shape (no weights) and the project's other
#                       dependencies unpacked from wheels (faiss-cpu, jieba, opencc,
#                       beautifulsoup4, soupsieve), ~15 MB
#   .gpu/corpus.tar.xz  the corpus (../shared/corpus), ~21 MB
# Then, there (carry .gpu), the command this script prints last.
#
#   bash eval/gpu_bundle.sh [PYTHON_VERSION]      # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
python_version="${1:-3.12}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p .gpu "$work/whl" "$work/site"

version() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
python eval/bench_gpu.py --write-shape "$work/shape"
python -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$work/whl" \
    "faiss-cpu==$(version faiss-cpu)" "opencc==$(version opencc)" \
    "beautifulsoup4==$(version beautifulsoup4)" "soupsieve==$(version soupsieve)"
python -m pip wheel -q --no-deps --no-build-isolation "jieba==$(version jieba)" -w "$work/whl"  # pure Python
for wheel in "$work"/whl/*.whl; do
    python -m zipfile -e "$wheel" "$work/site"
done
# jieba's parts qa never imports (part-of-speech tagging, keyword extraction, the paddle model)
rm -rf "$work/site/jieba/lac_small" "$work/site/jieba/analyse/idf.txt" "$work/site/jieba/posseg"/*.p \
       "$work/site/jieba/posseg"/prob_*.py "$work/site/jieba/posseg/char_state_tab.py"
tar -C "$work" -cf - site shape | xz -6 -T0 > .gpu/bundle.tar.xz
tar -C .. -cf - shared/corpus | xz -6 -T0 > .gpu/corpus.tar.xz
du -h .gpu/*.tar.xz
cat <<'EOF'
There (run from the repository root, with .gpu carried):
  mkdir -p /tmp/b && tar xJf .gpu/bundle.tar.xz -C /tmp/b && tar xJf .gpu/corpus.tar.xz -C /tmp/b
  PYTHONPATH=/tmp/b/site:$PWD python3 eval/bench_gpu.py --shape /tmp/b/shape --folder /tmp/b/shared/corpus \
      --passages 20000 --rounds 3 --switch-intervals 0.005 0.0005 --json $OUT/gpu.json
EOF
