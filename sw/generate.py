"""Text generation with sw.model: one prefill over the prompt, then one recurrent step per token.

Contract
--------
``generate(model, prompt_ids, max_new_tokens, temperature=0.0, top_p=1.0, seed=0, eos_id=None)``
  prompt_ids: a sequence of ints / 1-D tensor (one prompt) or a 2-D [B, T] tensor (a batch of
  equal-length prompts), at least one token. Returns the NEW tokens only: list[int] for one prompt,
  list[list[int]] for a batch. temperature 0 is greedy (argmax; ties -> lowest id). Otherwise
  logits / temperature, then nucleus filtering (the smallest set of most likely tokens whose
  probability reaches top_p; the top token is always kept), then one draw from a
  torch.Generator seeded with ``seed``: the same arguments give the same tokens. A sequence that
  emits ``eos_id`` stops there (the eos token is included).

CLI::

    python -m sw.generate --model demo|370m|DIR --prompt "To be" -n 50 [--temperature T --top-p P]

loads the model (sw.checkpoint.load_model: a directory, the trained demo, or a preset's seeded
random init, said so on stderr) and its tokenizer.json when present (sw.tokenizer); with a
tokenizer it prints the text, otherwise the token ids (the prompt is then taken as UTF-8 bytes,
each id = byte % vocab, after the BOS id, or as ``--ids 1,2,3``). Exit status 1 with a one-line
error (no traceback) for an unknown model or a bad checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """logits [B, V] float32 -> token ids [B]."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    if top_p < 1.0:
        sp, idx = probs.sort(dim=-1, descending=True, stable=True)
        before = sp.cumsum(-1) - sp                 # mass of the strictly more likely tokens
        sp = torch.where(before < top_p, sp, torch.zeros_like(sp))
        sp[:, 0] = torch.where(sp[:, 0] > 0, sp[:, 0], sp.new_ones(()))
        probs = torch.zeros_like(probs).scatter_(-1, idx, sp)
    probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(model, prompt_ids, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, eos_id: int | None = None):
    """See the module docstring."""
    if not (0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if isinstance(prompt_ids, torch.Tensor):
        ids = prompt_ids.detach().to(torch.long)
    else:
        ids = torch.tensor([int(t) for t in prompt_ids], dtype=torch.long)
    single = ids.dim() == 1
    if ids.dim() not in (1, 2):
        raise ValueError(f"prompt_ids must be 1-D or [B, T], got shape {tuple(ids.shape)}")
    if single:
        ids = ids.reshape(1, -1)
    if ids.shape[1] == 0:
        raise ValueError("the prompt must hold at least one token")
    device = next(model.parameters()).device
    ids = ids.to(device)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(int(seed))
    out: list[list[int]] = [[] for _ in range(ids.shape[0])]
    done = [False] * ids.shape[0]
    try:
        if max_new_tokens > 0:
            logits, state = model(ids)
            logits = logits[:, -1]
            for k in range(max_new_tokens):
                tok = _pick(logits.float(), temperature, top_p, gen)
                for b, t in enumerate(tok.tolist()):
                    if not done[b]:
                        out[b].append(t)
                        done[b] = eos_id is not None and t == eos_id
                if all(done) or k == max_new_tokens - 1:
                    break
                logits, state = model.step(tok, state)
    finally:
        model.train(was_training)
    return out[0] if single else out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo", help="checkpoint directory or preset name")
    ap.add_argument("--prompt", default="", help="prompt text")
    ap.add_argument("--ids", default=None, help="prompt as comma-separated token ids instead of text")
    ap.add_argument("-n", "--max-new-tokens", type=int, default=50)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (and random-init seed for presets)")
    args = ap.parse_args(argv)

    from spec.models import ConfigError
    from sw.checkpoint import DEMO_DIR, CheckpointError, load_model
    from sw.tokenizer import TokenizerError, load_tokenizer

    try:
        model = load_model(args.model, seed=args.seed)
        tok_dir = DEMO_DIR if args.model == "demo" else args.model
        tok = load_tokenizer(tok_dir)
    except (CheckpointError, ConfigError, TokenizerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cfg = model.config
    if args.ids is not None:
        try:
            prompt = [int(x) for x in args.ids.split(",") if x.strip()]
        except ValueError:
            print(f"error: --ids must be comma-separated integers, got {args.ids!r}", file=sys.stderr)
            return 1
        if any(not 0 <= t < cfg.vocab_size for t in prompt):
            print(f"error: token ids must be in [0, {cfg.vocab_size})", file=sys.stderr)
            return 1
    elif tok is not None:
        prompt = tok.encode(args.prompt).ids
    else:
        prompt = [b % cfg.vocab_size for b in args.prompt.encode("utf-8")]
        print("no tokenizer.json: prompt taken as UTF-8 bytes (id = byte % vocab)", file=sys.stderr)
    if not prompt or (prompt[0] != cfg.bos_token_id and tok is None):
        prompt = [cfg.bos_token_id] + prompt
    try:
        new = generate(model, prompt, args.max_new_tokens, temperature=args.temperature,
                       top_p=args.top_p, seed=args.seed, eos_id=cfg.eos_token_id)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if tok is not None:
        print(tok.decode(prompt + new))
    else:
        print(" ".join(map(str, prompt + new)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
