#!/usr/bin/env python3
"""llama.cpp peer for `cargo bench --bench jurors` (docs/BENCHMARKS.md).

Loads the same GGUF with llama-cpp-python (`pip install llama-cpp-python==0.3.36`), tokenizes the
exact prompt text the Rust benchmark rendered (special tokens parsed, as candle does), times one
prompt evaluation (after a warm-up evaluation of the same prompt) and then `--tokens` greedy
decode steps (argmax of the last logits, one forward pass per token, no stop token: the same
work candle's generate does), and prints one JSON line. Peak RSS is this process's
ru_maxrss (it includes the Python interpreter; `baseline_rss_kb` is the RSS before loading the
model).

With `--plan FILE` (JSON written by the benchmark) it runs, instead, the same token-level work
cybergov's engine did: `decode` — for each context (a token list), evaluate it and time
`steps` greedy single-token evals; and `jury` — for each juror, evaluate its prompt, decode
`gen` greedy tokens, then score each option the naive way: `reset()` and evaluate the whole
scoring conversation plus the option's tokens (one full prefill per option, no cache reuse).
"""

import argparse
import json
import os
import resource
import sys
import time


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-file", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--plan", help="JSON plan: decode contexts and the jury's token work")
    a = ap.parse_args()

    import numpy as np
    import llama_cpp

    if os.environ.get("CYBERGOV_LLAMA_NO_EXTRA_BUFTS") == "1":
        # Builds whose AMX kernels crash on machines that do not grant AMX state (VMs): keep
        # llama.cpp off its extra buffer types (AMX, and also the repacked layouts).
        import llama_cpp.llama as llama_mod

        default = llama_cpp.llama_model_default_params

        def params():
            p = default()
            p.use_extra_bufts = False
            return p

        llama_mod.llama_cpp.llama_model_default_params = params

    baseline = rss_kb()
    t = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=a.model,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        n_ctx=a.n_ctx,
        n_batch=512,
        verbose=False,
    )
    load_s = time.perf_counter() - t

    if a.plan:
        run_plan(llm, a, baseline, load_s)
        return

    with open(a.prompt_file, encoding="utf-8") as f:
        prompt = f.read()
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    if len(tokens) + a.tokens > a.n_ctx:
        sys.exit(f"prompt of {len(tokens)} tokens + {a.tokens} does not fit n_ctx {a.n_ctx}")

    # Warm-up: the same prompt once, then forget it.
    llm.eval(tokens)
    llm.reset()

    t = time.perf_counter()
    llm.eval(tokens)
    prefill_s = time.perf_counter() - t
    assert llm.n_tokens == len(tokens)

    # Without logits_all, llama-cpp-python keeps no scores: read the last output's logits.
    n_vocab = llm.n_vocab()

    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))

    out = []
    t = time.perf_counter()
    for _ in range(a.tokens):
        nxt = int(np.argmax(last_logits()))
        out.append(nxt)
        llm.eval([nxt])
    gen_s = time.perf_counter() - t

    text = llm.detokenize(out).decode("utf-8", errors="replace")
    print(
        json.dumps(
            {
                "prompt_tokens": len(tokens),
                "prefill_s": prefill_s,
                "gen_tokens": len(out),
                "gen_s": gen_s,
                "load_s": load_s,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "baseline_rss_kb": baseline,
                "text": text,
                "version": llama_cpp.__version__,
                "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
            }
        )
    )


def run_plan(llm, a, baseline, load_s):
    import numpy as np
    import llama_cpp

    with open(a.plan, encoding="utf-8") as f:
        plan = json.load(f)
    n_vocab = llm.n_vocab()

    def argmax():
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))
        return int(np.argmax(logits))

    # Warm-up, as for the default mode.
    llm.eval(plan["decode"]["contexts"][0][:64])
    llm.reset()
    decode = []
    for ctx in plan["decode"]["contexts"]:
        llm.reset()
        llm.eval(ctx)
        t = time.perf_counter()
        for _ in range(plan["decode"]["steps"]):
            llm.eval([argmax()])
        s = time.perf_counter() - t
        decode.append({"context": len(ctx), "tok_s": plan["decode"]["steps"] / s})
    t = time.perf_counter()
    for j in plan["jury"]:
        llm.reset()
        llm.eval(j["prompt"])
        for _ in range(j["gen_tokens"]):
            llm.eval([argmax()])
        for option in j["options"]:
            llm.reset()
            llm.eval(j["score_prompt"] + option)
    jury_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "decode": decode,
                "jury_s": jury_s,
                "load_s": load_s,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "baseline_rss_kb": baseline,
                "version": llama_cpp.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
