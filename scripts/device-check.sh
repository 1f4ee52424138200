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
# then says its fp32 limits do not hold). cuBLAS runs the GEMMs by default (GRPO_CUBLAS=1 says so here for the runs that
# check it); the second selfcheck sets GRPO_CUBLAS=0 to check the ILGPU GEMM kernel.
# BUDGET_S (default 480): the seconds the whole check may take. A GPU machine is lent for minutes, so every command runs
# under a timeout (its own limit, cut to what is left of the budget), and a command that would start with less than 20 s
# left (MIN_START_S) is skipped and says so: a hang or a slow run costs that command, never the results of the ones before it.
# GRPO_APP (a folder holding an unpacked `grpo`) skips the unpacking, PYTHON names the interpreter of the twins; the tests
# run the script with stand-ins for both.
set -u
out=${1:?usage: scripts/device-check.sh RESULTS_DIR [APP_ARCHIVE]}
archive=${2:-.device/app.tar.xz}
budget=${BUDGET_S:-480}
min_start=${MIN_START_S:-20}
deadline=$(( $(date +%s) + budget ))
mkdir -p "$out"
if [ -n "${GRPO_APP:-}" ]; then
    app=$GRPO_APP
else
    app=$(mktemp -d)
    trap 'rm -rf "$app"' EXIT
    tar xJf "$archive" -C "$app" || { echo "cannot unpack $archive" | tee "$out/error.txt" >&2; exit 2; }
fi
grpo="$app/grpo"
[ -x "$grpo" ] || { echo "no grpo executable in $app" | tee "$out/error.txt" >&2; exit 2; }

# Runs one command under a timeout of LIMIT seconds (or what is left of the budget, if less), keeping its output and
# exit code (124: timed out); never stops the script. Usage: run NAME LIMIT COMMAND...
run() {
    local name=$1 limit=$2; shift 2
    local left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt "$min_start" ]; then
        echo "$name skipped: ${left} s of the ${budget} s budget left" | tee -a "$out/summary.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local start=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" > "$out/$name.out" 2> "$out/$name.err"
    local rc=$?
    local end=$(date +%s.%N)
    local note=""
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note=" (timed out after ${limit} s)"
    echo "$name rc=$rc seconds=$(awk "BEGIN { print $end - $start }")$note" | tee -a "$out/summary.txt"
}

# PyTorch with CUDA, when this machine's python3 (PYTHON) has it: the eager twins of the bench steps
# (scripts/pytorch-twin.py) run right after each bench on the same GPU, so the GPU figures come as ratios from one run.
python=${PYTHON:-python3}
if "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then has_torch=1; else has_torch=; fi
twin() {
    local name=$1; shift
    if [ -n "$has_torch" ]; then run "$name" 120 "$python" "$(dirname "$0")/pytorch-twin.py" --device cuda "$@"
    else echo "$name skipped: $python has no PyTorch with CUDA" | tee -a "$out/summary.txt"; fi
}

# Our phase times over the twin's, per phase, for a shape whose bench and twin both printed them: the issue's target reads
# the whole step's ratio (at most 0.5 at GPT-2 small's shape).
ratios() {
    local shape=$1 bench="$out/bench-$1.out" twin="$out/twin-$1.out" phase ours theirs
    [ -s "$bench" ] && [ -s "$twin" ] || return 0
    for phase in rollout reference_logprobs policy_forward_backward optimizer step; do
        ours=$(grep -o "\"${phase}_s\":[0-9.eE+-]*" "$bench" | head -1 | cut -d: -f2)
        theirs=$(awk -v p="$phase" '$1 == p && $3 == "ms" { print $2 / 1000 }' "$twin")
        [ -n "$ours" ] && [ -n "$theirs" ] || continue
        awk -v s="$shape" -v p="$phase" -v a="$ours" -v b="$theirs" \
            'BEGIN { printf "ratio %s %s: %.4f s against PyTorch'"'"'s %.4f s = %.2f\n", s, p, a, b, (b > 0 ? a / b : 0) }' | tee -a "$out/summary.txt"
    done
}

{ nvidia-smi || true; } > "$out/nvidia-smi.txt" 2>&1
GRPO_CUBLAS=1 run selfcheck 150 "$grpo" selfcheck --device cuda
# A kernel fault on a GPU surfaces at a later call, so the failing check may not be the one the output names: rerun with
# every launch synchronous (the CUDA driver's CUDA_LAUNCH_BLOCKING) so that the error stops at the kernel that caused it.
if ! grep -q "^selfcheck rc=0 " "$out/summary.txt"; then
    CUDA_LAUNCH_BLOCKING=1 GRPO_CUBLAS=1 run selfcheck-blocking 150 "$grpo" selfcheck --device cuda
fi
# GPT-2 small's shape (12 layers, 12 heads, C = 768, V = 50257), 8 prompts x 8, 64 + 128 tokens.
GRPO_CUBLAS=1 run bench-gpt2-small 120 "$grpo" bench --device cuda --json --family gpt2 --vocab 50257 --layers 12 --heads 12 --embd 768 \
    --prompts 8 --group 8 --prompt-len 64 --completion-len 128 --steps 3
twin twin-gpt2-small --family gpt2 --vocab 50257 --layers 12 --heads 12 --embd 768 \
    --prompts 8 --group 8 --prompt-len 64 --completion-len 128 --beta 0 --steps 3
# Qwen2.5-0.5B's shape through the llama family (24 layers, 14 heads, C = 896, V = 151936); its twin has the same
# architecture: KVH = H/2 and MLP 8C/3 rounded up to 32.
GRPO_CUBLAS=1 run bench-qwen-0.5b 120 "$grpo" bench --device cuda --json --family llama --vocab 151936 --layers 24 --heads 14 --embd 896 \
    --prompts 4 --group 8 --prompt-len 64 --completion-len 128 --steps 2
twin twin-qwen-0.5b --family qwen2 --vocab 151936 --layers 24 --heads 14 --kv-heads 7 \
    --embd 896 --mlp 2400 --prompts 4 --group 8 --prompt-len 64 --completion-len 128 --beta 0 --steps 2
GRPO_CUBLAS=1 run train-reverse 90 "$grpo" train --device cuda --task reverse --steps 20 --output "$out/train-reverse"
# The same selfcheck on the ILGPU kernel alone, so cuBLAS and the kernel are both checked.
GRPO_CUBLAS=0 GRPO_TF32= run selfcheck-ilgpu-gemm 150 "$grpo" selfcheck --device cuda
ratios gpt2-small
ratios qwen-0.5b
grep -h "nccl" "$out/selfcheck.out" 2>/dev/null | tee -a "$out/summary.txt"
echo "results in $out (summary.txt lists each command's exit code)"
