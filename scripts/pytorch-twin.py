#!/usr/bin/env python3
"""The PyTorch eager twin of `grpo bench`'s GRPO step, for a side-by-side time on one machine (CPU or GPU).

A model of Qwen2's or GPT-2's architecture written in plain PyTorch (fp32, random weights, tied LM head), and one GRPO
step as grpo runs it: rollout of B prompts x G completions (prefill P tokens, then T decode steps with a KV cache,
sampling at T = 1), reference log-probs when beta > 0, policy forward + backward of the dapo loss (with a k3 KL term
when beta > 0), gradient clipping at 1, AdamW. Prints the median time of each phase over STEPS steps after one
warm-up step (on CUDA every phase ends with a synchronize). Outside CI.

Defaults: Qwen2.5-0.5B's shape (24 layers, C = 896, 14 heads / 2 kv heads, MLP 4864, V = 151,936, theta 1e6),
2 prompts x 4 completions, 64 + 64 tokens, beta 0.04: scripts/measure-qwen-0.5b.sh's step.
GPT-2 small as scripts/device-check.sh benches it:
    python3 scripts/pytorch-twin.py --device cuda --family gpt2 --vocab 50257 --layers 12 --heads 12 --embd 768 \\
        --prompts 8 --group 8 --prompt-len 64 --completion-len 128 --beta 0

On a Debian CPU machine:
    apt-get install python3-torch libopenblas0-pthread   # Debian's PyTorch 1.13; no PyPI needed
    /usr/bin/python3 scripts/pytorch-twin.py [--threads 2] [--steps 2]
libopenblas0-pthread matters: without it Debian's libblas.so.3 alternative is the reference (netlib) BLAS, one
thread and unblocked, and the twin's first step did not finish in 9.5 minutes; with it the same GEMM runs at
~120 GFLOP/s on 2 cores.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F


class Shape:
    """The model and step sizes, from the command line."""

    def __init__(self, args):
        self.family, self.c, self.layers, self.heads = args.family, args.embd, args.layers, args.heads
        self.kv_heads = args.heads if args.family == "gpt2" else args.kv_heads
        self.d = args.embd // args.heads
        self.mlp = args.mlp or (4 * args.embd if args.family == "gpt2" else 4864 if args.embd == 896 else (8 * args.embd // 3 + 31) // 32 * 32)
        self.vocab, self.theta, self.eps = args.vocab, 1e6, 1e-6 if args.family != "gpt2" else 1e-5
        self.prompts, self.group, self.prompt_len, self.completion_len = args.prompts, args.group, args.prompt_len, args.completion_len
        self.beta = args.beta


class QwenBlock(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.norm1 = torch.nn.Parameter(torch.ones(s.c))
        self.q = torch.nn.Linear(s.c, s.heads * s.d)
        self.k = torch.nn.Linear(s.c, s.kv_heads * s.d)
        self.v = torch.nn.Linear(s.c, s.kv_heads * s.d)
        self.o = torch.nn.Linear(s.heads * s.d, s.c, bias=False)
        self.norm2 = torch.nn.Parameter(torch.ones(s.c))
        self.gate = torch.nn.Linear(s.c, s.mlp, bias=False)
        self.up = torch.nn.Linear(s.c, s.mlp, bias=False)
        self.down = torch.nn.Linear(s.mlp, s.c, bias=False)

    def forward(self, x, cos, sin, cache=None):
        # x: (B, T, C); cos, sin: (T, D); cache: (keys, values) of earlier positions or None
        s, (b, t, _) = self.s, x.shape
        h = rms_norm(x, self.norm1, s.eps)
        q = rope(self.q(h).view(b, t, s.heads, s.d).transpose(1, 2), cos, sin)       # (B, H, T, D)
        k = rope(self.k(h).view(b, t, s.kv_heads, s.d).transpose(1, 2), cos, sin)    # (B, KVH, T, D)
        v = self.v(h).view(b, t, s.kv_heads, s.d).transpose(1, 2)                    # (B, KVH, T, D)
        attention, cache = attend(q, k, v, cache, s.heads // s.kv_heads)
        x = x + self.o(attention.transpose(1, 2).reshape(b, t, s.heads * s.d))
        h = rms_norm(x, self.norm2, s.eps)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), cache


class Gpt2Block(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.ln1, self.ln2 = torch.nn.LayerNorm(s.c, eps=s.eps), torch.nn.LayerNorm(s.c, eps=s.eps)
        self.attn = torch.nn.Linear(s.c, 3 * s.c)       # c_attn: q, k and v in one GEMM
        self.proj = torch.nn.Linear(s.c, s.c)
        self.fc, self.fc_proj = torch.nn.Linear(s.c, s.mlp), torch.nn.Linear(s.mlp, s.c)

    def forward(self, x, cos, sin, cache=None):
        s, (b, t, _) = self.s, x.shape
        q, k, v = (part.view(b, t, s.heads, s.d).transpose(1, 2) for part in self.attn(self.ln1(x)).split(s.c, -1))
        attention, cache = attend(q, k, v, cache, 1)
        x = x + self.proj(attention.transpose(1, 2).reshape(b, t, s.c))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh")), cache


def attend(q, k, v, cache, repeat):
    # q: (B, H, T, D); k, v: (B, KVH, T, D) of the new positions -> (B, H, T, D), the cache with them appended
    if cache is not None:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    cache = (k, v)
    k, v = k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])                # (B, H, T, S)
    t, s = q.shape[2], k.shape[2]
    causal = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
    return scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v, cache


class Model(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.embed = torch.nn.Embedding(s.vocab, s.c)
        gpt2 = s.family == "gpt2"
        self.positions = torch.nn.Embedding(s.prompt_len + s.completion_len, s.c) if gpt2 else None
        self.blocks = torch.nn.ModuleList((Gpt2Block(s) if gpt2 else QwenBlock(s)) for _ in range(s.layers))
        self.final = torch.nn.LayerNorm(s.c, eps=s.eps) if gpt2 else None
        self.norm = None if gpt2 else torch.nn.Parameter(torch.ones(s.c))
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids, start=0, caches=None):
        # ids: (B, T) -> logits (B, T, V) (the LM head is the embedding: tied)
        t, s = ids.shape[1], self.s
        x = self.embed(ids)
        if self.positions is not None:
            x = x + self.positions(torch.arange(start, start + t, device=ids.device))
        cos, sin = rope_table(s, start, t, ids.device)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, cos, sin, None if caches is None else caches[i])
            new_caches.append(cache)
        x = self.final(x) if self.final is not None else rms_norm(x, self.norm, s.eps)
        return x @ self.embed.weight.t(), new_caches


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_table(s, start, t, device):
    inv = 1.0 / s.theta ** (torch.arange(0, s.d, 2, dtype=torch.float32, device=device) / s.d)
    angles = torch.outer(torch.arange(start, start + t, dtype=torch.float32, device=device), inv)
    angles = torch.cat([angles, angles], -1)  # (T, D), rotate-half layout as in transformers
    return angles.cos(), angles.sin()


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


@torch.no_grad()
def rollout(model, prompts):
    # prompts: (B·G, P) -> completions (B·G, T): prefill, then one decode step per token with the KV cache
    s = model.s
    logits, caches = model(prompts)
    tokens = []
    for step in range(s.completion_len):
        token = torch.multinomial(logits[:, -1].softmax(-1), 1)  # (N, 1)
        tokens.append(token)
        if step == s.completion_len - 1:
            break
        logits, caches = model(token, s.prompt_len + step, caches)
    return torch.cat(tokens, 1)


def completion_logprobs(model, sequences):
    # sequences: (N, P + T) -> log-probs of the completion tokens (N, T)
    logits = model(sequences)[0][:, model.s.prompt_len - 1:-1]
    return logits.log_softmax(-1).gather(-1, sequences[:, model.s.prompt_len:, None]).squeeze(-1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--family", choices=["qwen2", "gpt2"], default="qwen2")
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--embd", type=int, default=896)
    parser.add_argument("--mlp", type=int, default=0, help="MLP width (0: 4C for gpt2, 4864 at C = 896, else grpo bench's 8C/3)")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--completion-len", type=int, default=64)
    parser.add_argument("--beta", type=float, default=0.04)
    args = parser.parse_args()
    s = Shape(args)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    policy = Model(s).to(device)
    reference = None
    if s.beta > 0:
        reference = Model(s).to(device)
        reference.load_state_dict(policy.state_dict())
        reference.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0)
    parameters = sum(p.numel() for p in policy.parameters())
    print(f"PyTorch {torch.__version__} on {device}{'' if device.type == 'cuda' else f', {torch.get_num_threads()} threads'}; "
          f"{s.family} {parameters:,} parameters, {s.prompts} prompts x {s.group} completions, P = {s.prompt_len}, "
          f"T = {s.completion_len}, beta {s.beta}")

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    times = {name: [] for name in ("rollout", "reference_logprobs", "policy_forward_backward", "optimizer", "step")}
    for step in range(args.steps + 1):
        prompts = torch.randint(0, s.vocab, (s.prompts, s.prompt_len), device=device).repeat_interleave(s.group, 0)
        start = now()
        completions = rollout(policy, prompts)
        t1 = now()
        sequences = torch.cat([prompts, completions], 1)
        ref = None
        if reference is not None:
            with torch.no_grad():
                ref = completion_logprobs(reference, sequences)
        t2 = now()
        rewards = torch.randn(s.prompts, s.group, device=device)
        advantages = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).reshape(-1, 1)
        logp = completion_logprobs(policy, sequences)
        ratio = torch.exp(logp - logp.detach())  # mu = 1: the old policy is the current one
        per_token = -(ratio * advantages)
        if ref is not None:
            per_token = per_token + s.beta * (torch.exp(ref - logp) - (ref - logp) - 1)
        loss = per_token.sum() / logp.numel()  # dapo: over every completion token
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        t3 = now()
        optimizer.step()
        t4 = now()
        if step > 0:  # the first step warms up
            for name, seconds in zip(times, (t1 - start, t2 - t1, t3 - t2, t4 - t3, t4 - start)):
                times[name].append(seconds)
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: rollout {t1 - start:.3f} s, reference {t2 - t1:.3f} s, "
              f"forward+backward {t3 - t2:.3f} s, optimizer {t4 - t3:.3f} s, whole step {t4 - start:.3f} s", flush=True)
    print(f"medians over {args.steps} steps after one warm-up step:")
    for name, values in times.items():
        print(f"  {name:<28} {statistics.median(values) * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
