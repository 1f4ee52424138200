#!/usr/bin/env bash
# The one check a GPU machine runs, with no .NET SDK and no network: unpacks the self-contained `grpo`
# (made by ../shared/scripts/pack-for-device.sh, or `dotnet publish src/Grpo.Cli -c Release -r linux-x64
# --self-contained` then tar), then runs selfcheck, bench at two model shapes and a short train on CUDA,
# writing every output, exit code and the device's counters into the folder given. A few minutes in all.
# selfcheck on CUDA also runs NCCL's all-reduce over a one-rank communicator (the most one GPU can show of the
# data-parallel transport); its line says `skip` with where it looked when libnccl.so.2 is absent.
#
# Usage:  scripts/device-check.sh RESULTS_DIR [APP_ARCHIVE (default .device/app.tar.xz)]
# Environment passed through: GRPO_CUDA_LIBS (folder with libcublas.so.N and libnccl.so.2), GRPO_TF32=1 (to the cuBLAS runs only; selfcheck
# then says its fp32 limits do not hold). GRPO_CUBLAS=1 (cuBLAS GEMMs) is set here for the runs that check cuBLAS.
set -u
out=${1:?usage: scripts/device-check.sh RESULTS_DIR [APP_ARCHIVE]}
archive=${2:-.device/app.tar.xz}
mkdir -p "$out"
app=$(mktemp -d)
tar xJf "$archive" -C "$app" || { echo "cannot unpack $archive" | tee "$out/error.txt" >&2; exit 2; }
grpo="$app/grpo"
[ -x "$grpo" ] || { echo "no grpo executable in $archive" | tee "$out/error.txt" >&2; exit 2; }

# Runs one command, keeping its output and exit code; never stops the script.
run() {
    local name=$1; shift
    local start=$(date +%s.%N)
    "$@" > "$out/$name.out" 2> "$out/$name.err"
    local rc=$?
    local end=$(date +%s.%N)
    echo "$name rc=$rc seconds=$(awk "BEGIN { print $end - $start }")" | tee -a "$out/summary.txt"
}

{ nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
GRPO_CUBLAS=1 run selfcheck "$grpo" selfcheck --device cuda
# GPT-2 small's shape (12 layers, 12 heads, C = 768, V = 50257), 8 prompts x 8, 64 + 128 tokens.
GRPO_CUBLAS=1 run bench-gpt2-small "$grpo" bench --device cuda --json --family gpt2 --vocab 50257 --layers 12 --heads 12 --embd 768 \
    --prompts 8 --group 8 --prompt-len 64 --completion-len 128 --steps 3
# Qwen2.5-0.5B's shape through the llama family (24 layers, 14 heads, C = 896, V = 151936).
GRPO_CUBLAS=1 run bench-qwen-0.5b "$grpo" bench --device cuda --json --family llama --vocab 151936 --layers 24 --heads 14 --embd 896 \
    --prompts 4 --group 8 --prompt-len 64 --completion-len 128 --steps 2
GRPO_CUBLAS=1 run train-reverse "$grpo" train --device cuda --task reverse --steps 20 --output "$out/train-reverse"
# The same selfcheck on the ILGPU kernel alone, so cuBLAS and the kernel are both checked.
GRPO_TF32= run selfcheck-ilgpu-gemm "$grpo" selfcheck --device cuda
# The PyTorch eager twins of the two bench steps on the same GPU (PyTorch with CUDA, when this machine's python3 has it),
# so the GPU figures come as ratios from one run. The llama-family bench above has KVH = H/2 and MLP 8C/3 rounded up to 32.
if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    run twin-gpt2-small python3 "$(dirname "$0")/pytorch-twin.py" --device cuda --family gpt2 --vocab 50257 --layers 12 --heads 12 --embd 768 \
        --prompts 8 --group 8 --prompt-len 64 --completion-len 128 --beta 0 --steps 3
    run twin-qwen-0.5b python3 "$(dirname "$0")/pytorch-twin.py" --device cuda --family qwen2 --vocab 151936 --layers 24 --heads 14 --kv-heads 7 \
        --embd 896 --mlp 2400 --prompts 4 --group 8 --prompt-len 64 --completion-len 128 --beta 0 --steps 2
else
    echo "twins skipped: python3 has no PyTorch with CUDA" | tee -a "$out/summary.txt"
fi
grep -h "nccl" "$out/selfcheck.out" | tee -a "$out/summary.txt"
rm -rf "$app"
echo "results in $out (summary.txt lists each command's exit code)"
