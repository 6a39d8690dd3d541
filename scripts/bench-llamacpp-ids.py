#!/usr/bin/env python3
"""llama.cpp's side of the engine's `decode` example (docs/BENCHMARKS.md): the same token ids
(`(100 + i % 5000) % vocab`, no tokenizer involved, so any GGUF works, random-weight ones
included), the prefill of the context from an empty cache timed PREFILL_ROUNDS times, then
STEPS greedy single-token evaluations timed ROUNDS times after the context. Prints the same
lines as the example: best and median of each, and this process's peak RSS.

    python bench-llamacpp-ids.py MODEL CONTEXT STEPS [THREADS] [ROUNDS] [PREFILL_ROUNDS]
"""

import resource
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama


def main():
    path, context, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    prefill_rounds = max(1, int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    llm = Llama(model_path=path, n_ctx=context + steps + 8, n_batch=512, n_threads=threads,
                n_threads_batch=threads, logits_all=False, verbose=False)
    vocab = llm.n_vocab()
    ids = [(100 + i % 5000) % vocab for i in range(context)]
    llm.reset()
    llm.eval(ids[:8])  # warm-up
    rates = []
    for _ in range(prefill_rounds):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        rates.append(context / (time.perf_counter() - t))
    rates.sort()
    print(f"prefill of {context} tokens, {prefill_rounds} rounds: best {rates[-1]:.1f} tok/s, "
          f"median {rates[len(rates) // 2]:.1f}")
    rates = []
    for _ in range(rounds):
        llm.n_tokens = context  # rewind to the context, as the example does
        t = time.perf_counter()
        for _ in range(steps):
            # Without logits_all no scores are kept: the last evaluation's logits (after a
            # rewind, those of the previous round's last step: the work is the same).
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(vocab,))
            llm.eval([int(logits.argmax())])
        rates.append(steps / (time.perf_counter() - t))
    rates.sort()
    print(f"{steps} steps at {context} context, {rounds} rounds: best {rates[-1]:.2f} tok/s, "
          f"median {rates[len(rates) // 2]:.2f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
