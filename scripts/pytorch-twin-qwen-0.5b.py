#!/usr/bin/env python3
"""The PyTorch eager twin of scripts/measure-qwen-0.5b.sh's GRPO step, for a side-by-side time on one machine.

A Qwen2 model of Qwen2.5-0.5B's shape (24 layers, C = 896, 14 heads / 2 kv heads, MLP 4864, V = 151,936, tied,
theta 1e6) written in plain PyTorch (fp32, random weights), and one GRPO step as grpo runs it: rollout of
2 prompts x 4 completions (prefill 64 tokens, then 64 decode steps with a KV cache, sampling at T = 1),
reference log-probs, policy forward + backward of the dapo loss with a k3 KL term (beta 0.04), AdamW.
Prints the median time of each phase over STEPS steps after one warm-up step. Outside CI.

    apt-get install python3-torch libopenblas0-pthread   # Debian's PyTorch 1.13; no PyPI needed
    /usr/bin/python3 scripts/pytorch-twin-qwen-0.5b.py [--threads 2] [--steps 2]

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

C, LAYERS, HEADS, KV_HEADS, MLP, VOCAB, THETA, EPS = 896, 24, 14, 2, 4864, 151936, 1e6, 1e-6
D = C // HEADS
PROMPTS, GROUP, PROMPT_LEN, COMPLETION_LEN, BETA = 2, 4, 64, 64, 0.04


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = torch.nn.Parameter(torch.ones(C))
        self.q = torch.nn.Linear(C, HEADS * D)
        self.k = torch.nn.Linear(C, KV_HEADS * D)
        self.v = torch.nn.Linear(C, KV_HEADS * D)
        self.o = torch.nn.Linear(HEADS * D, C, bias=False)
        self.norm2 = torch.nn.Parameter(torch.ones(C))
        self.gate = torch.nn.Linear(C, MLP, bias=False)
        self.up = torch.nn.Linear(C, MLP, bias=False)
        self.down = torch.nn.Linear(MLP, C, bias=False)

    def forward(self, x, cos, sin, cache=None):
        # x: (B, T, C); cos, sin: (T, D); cache: (keys, values) of earlier positions or None
        b, t, _ = x.shape
        h = rms_norm(x, self.norm1)
        q = rope(self.q(h).view(b, t, HEADS, D).transpose(1, 2), cos, sin)     # (B, H, T, D)
        k = rope(self.k(h).view(b, t, KV_HEADS, D).transpose(1, 2), cos, sin)  # (B, KVH, T, D)
        v = self.v(h).view(b, t, KV_HEADS, D).transpose(1, 2)                  # (B, KVH, T, D)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        new_cache = (k, v)
        k = k.repeat_interleave(HEADS // KV_HEADS, 1)
        v = v.repeat_interleave(HEADS // KV_HEADS, 1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)                         # (B, H, T, S)
        s = k.shape[2]
        causal = torch.ones(t, s, dtype=torch.bool).tril(s - t)
        attention = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v  # (B, H, T, D)
        x = x + self.o(attention.transpose(1, 2).reshape(b, t, C))
        h = rms_norm(x, self.norm2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), new_cache


class Qwen2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = torch.nn.Parameter(torch.ones(C))
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids, start=0, caches=None):
        # ids: (B, T) -> logits (B, T, V) (the LM head is the embedding: tied)
        t = ids.shape[1]
        cos, sin = rope_table(start, t)
        x = self.embed(ids)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, cos, sin, None if caches is None else caches[i])
            new_caches.append(cache)
        return rms_norm(x, self.norm) @ self.embed.weight.t(), new_caches


def rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def rope_table(start, t):
    inv = 1.0 / THETA ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
    angles = torch.outer(torch.arange(start, start + t, dtype=torch.float32), inv)
    angles = torch.cat([angles, angles], -1)  # (T, D), rotate-half layout as in transformers
    return angles.cos(), angles.sin()


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


@torch.no_grad()
def rollout(model, prompts):
    # prompts: (B·G, P) -> completions (B·G, T): prefill, then one decode step per token with the KV cache
    logits, caches = model(prompts)
    tokens = []
    for step in range(COMPLETION_LEN):
        token = torch.multinomial(logits[:, -1].softmax(-1), 1)  # (N, 1)
        tokens.append(token)
        if step == COMPLETION_LEN - 1:
            break
        logits, caches = model(token, PROMPT_LEN + step, caches)
    return torch.cat(tokens, 1)


def completion_logprobs(model, sequences):
    # sequences: (N, P + T) -> log-probs of the completion tokens (N, T)
    logits = model(sequences)[0][:, PROMPT_LEN - 1:-1]
    return logits.log_softmax(-1).gather(-1, sequences[:, PROMPT_LEN:, None]).squeeze(-1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    policy, reference = Qwen2(), Qwen2()
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0)
    parameters = sum(p.numel() for p in policy.parameters())
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads; Qwen2 {parameters:,} parameters, "
          f"{PROMPTS} prompts x {GROUP} completions, P = {PROMPT_LEN}, T = {COMPLETION_LEN}, beta {BETA}")

    times = {name: [] for name in ("rollout", "reference_logprobs", "policy_forward_backward", "optimizer", "step")}
    for step in range(args.steps + 1):
        prompts = torch.randint(0, 151643, (PROMPTS, PROMPT_LEN)).repeat_interleave(GROUP, 0)
        start = time.perf_counter()
        completions = rollout(policy, prompts)
        t1 = time.perf_counter()
        sequences = torch.cat([prompts, completions], 1)
        with torch.no_grad():
            ref = completion_logprobs(reference, sequences)
        t2 = time.perf_counter()
        rewards = torch.randn(PROMPTS, GROUP)
        advantages = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).reshape(-1, 1)
        logp = completion_logprobs(policy, sequences)
        ratio = torch.exp(logp - logp.detach())  # mu = 1: the old policy is the current one
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss = (-(ratio * advantages) + BETA * kl).sum() / logp.numel()  # dapo: over every completion token
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if step > 0:  # the first step warms up
            for name, seconds in zip(times, (t1 - start, t2 - t1, t3 - t2, t4 - t3, t4 - start)):
                times[name].append(seconds)
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: rollout {t1 - start:.1f} s, reference {t2 - t1:.1f} s, "
              f"forward+backward {t3 - t2:.1f} s, optimizer {t4 - t3:.1f} s, whole step {t4 - start:.1f} s", flush=True)
    print(f"medians over {args.steps} steps after one warm-up step:")
    for name, values in times.items():
        print(f"  {name:<28} {statistics.median(values) * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
