#!/bin/sh
# A real (if small) shell training job: learn a vocabulary from the `train` channel.
# Hyperparameters arrive as arguments: --min_count N --top K
set -eu
min_count=1
top=10
while [ $# -gt 0 ]; do
  case "$1" in
    --min_count) min_count=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -d "$SM_CHANNEL_TRAIN" ] || { echo "ValueError: no train channel at $SM_CHANNEL_TRAIN" >&2; exit 1; }
mkdir -p "$SM_MODEL_DIR" "$SM_OUTPUT_DATA_DIR"
cat "$SM_CHANNEL_TRAIN"/* | tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c | sort -rn \
  | awk -v m="$min_count" '$1 >= m { print $2 "\t" $1 }' > "$SM_MODEL_DIR/vocab.tsv"
words=$(wc -l < "$SM_MODEL_DIR/vocab.tsv")
echo "vocabulary: $words words (min_count=$min_count); top $top:"
head -n "$top" "$SM_MODEL_DIR/vocab.tsv"
printf '{"vocabulary_size": %d, "min_count": %d}\n' "$words" "$min_count" > "$SM_OUTPUT_DATA_DIR/metrics.json"
