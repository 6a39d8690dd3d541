#!/usr/bin/env python3
"""llama.cpp's greedy continuations of the Gemma comparison prompts (docs/BENCHMARKS.md, "Gemma 3
270M against llama.cpp"): BOS + prompt, then the argmax of the last logits one token at a time,
32 tokens, printed as JSON {prompt: {"prompt": ids, "gen": ids}}. cybergov's side is printed by
`cargo test --test it gemma:: -- --nocapture`.

Usage: python3 scripts/greedy-llamacpp.py MODEL.gguf
"""
import json
import sys

import llama_cpp
from llama_cpp import Llama

PROMPTS = [
    "Question: What is 2 + 2?\nAnswer:",
    "The capital of France is",
    "Polkadot OpenGov lets token holders",
]


def main() -> None:
    llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, verbose=False)
    out = {}
    for prompt in PROMPTS:
        llm.reset()
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        llm.eval(ids)
        gen = []
        for _ in range(32):
            logits = llama_cpp.llama_get_logits(llm.ctx)
            best = max(range(llm.n_vocab()), key=lambda i: logits[i])
            gen.append(best)
            llm.eval([best])
        out[prompt] = {"prompt": ids, "gen": gen}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
