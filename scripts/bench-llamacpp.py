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
The same jury work is then run again with llama.cpp at its best (`run_jury_best`: three
sequences in one context, the shared prompt prefix evaluated once, every step one batch of the
three sequences) and reported as `jury_best_s`.
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
    jury_best_s = run_jury_best(llm, a, plan["jury"])
    print(
        json.dumps(
            {
                "decode": decode,
                "jury_s": jury_s,
                "jury_best_s": jury_best_s,
                "load_s": load_s,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "baseline_rss_kb": baseline,
                "version": llama_cpp.__version__,
            }
        )
    )


def run_jury_best(llm, a, jury):
    """The same jury work with llama.cpp at its best: one context of three sequences
    (`n_seq_max = 3`, one unified KV cache), the prompt prefix the jurors share evaluated once in
    sequence 0 and shared with the others (`llama_memory_seq_cp`), each juror's rest of the
    prompt and then every decode step as one batch of the three sequences, and the scoring
    continuing each sequence's cache (`llama_memory_seq_rm` back to the common prefix), option
    `k` of every juror as one batch. Returns the seconds it took (the context is created
    before the clock starts, as the model was loaded before)."""
    import numpy as np
    import llama_cpp

    n = len(jury)
    longest = max(len(j["score_prompt"]) + max(len(o) for o in j["options"]) for j in jury)
    longest = max(longest, max(len(j["prompt"]) + j["gen_tokens"] for j in jury))
    cp = llama_cpp.llama_context_default_params()
    # One unified cache holds every sequence's cells: room for all three whole.
    cp.n_ctx = n * longest + 64
    cp.n_batch = longest + 64
    cp.n_ubatch = 512
    cp.n_seq_max = n
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    if hasattr(cp, "kv_unified"):
        cp.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(llm.model, cp)
    if not ctx:
        raise SystemExit("llama.cpp could not create a context of three sequences")
    mem = llama_cpp.llama_get_memory(ctx)
    n_vocab = llm.n_vocab()
    batch = llama_cpp.llama_batch_init(cp.n_batch, 0, n)

    def decode(items):
        """items: (token, pos, seq, want_logits); returns the batch index of each wanted row."""
        batch.n_tokens = len(items)
        rows = []
        for i, (tok, pos, seq, want) in enumerate(items):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = want
            if want:
                rows.append(i)
        rc = llama_cpp.llama_decode(ctx, batch)
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")
        return rows

    def logits(i):
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,))

    def common(x, y):
        k = 0
        while k < min(len(x), len(y)) and x[k] == y[k]:
            k += 1
        return k

    def extend(seq_tokens, seq, new, last_logits):
        """Items appending `new` to sequence `seq` (whose tokens are `seq_tokens`)."""
        p0 = len(seq_tokens)
        seq_tokens.extend(new)
        return [(t, p0 + k, seq, last_logits and k == len(new) - 1) for k, t in enumerate(new)]

    t = time.perf_counter()
    prompts = [j["prompt"] for j in jury]
    shared = min(common(prompts[0], p) for p in prompts)
    shared = min(shared, min(len(p) for p in prompts) - 1)
    held = [[] for _ in range(n)]
    decode(extend(held[0], 0, prompts[0][:shared], False))
    for s in range(1, n):
        llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        held[s] = list(held[0])
    items = []
    for s in range(n):
        items += extend(held[s], s, prompts[s][shared:], True)
    rows = decode(items)
    nxt = [int(np.argmax(logits(r))) for r in rows]
    steps = [j["gen_tokens"] for j in jury]
    # Each step's argmax is computed, but the token fed back is cybergov's (the rationale as
    # the scoring conversation holds it, where that starts with the prompt): both engines then
    # hold the same tokens when scoring starts, so the scoring costs both the same.
    forced = [
        j["score_prompt"][len(j["prompt"]):] if j["score_prompt"][: len(j["prompt"])] == j["prompt"] else []
        for j in jury
    ]
    for step in range(max(steps)):
        going = [s for s in range(n) if step < steps[s]]
        items = []
        for s in going:
            tok = forced[s][step] if step < len(forced[s]) else nxt[s]
            items += extend(held[s], s, [tok], True)
        if not items:
            break
        rows = decode(items)
        for s, r in zip(going, rows):
            nxt[s] = int(np.argmax(logits(r)))
    # Scoring: each sequence keeps what its scoring conversation shares with it.
    for s, j in enumerate(jury):
        keep = min(common(held[s], j["score_prompt"]), len(j["score_prompt"]) - 1)
        llama_cpp.llama_memory_seq_rm(mem, s, keep, -1)
        del held[s][keep:]
    items = []
    for s, j in enumerate(jury):
        items += extend(held[s], s, j["score_prompt"][len(held[s]):], True)
    decode(items)
    for k in range(max(len(j["options"]) for j in jury)):
        items = []
        for s, j in enumerate(jury):
            if k < len(j["options"]):
                base = len(j["score_prompt"])
                llama_cpp.llama_memory_seq_rm(mem, s, base, -1)
                del held[s][base:]
                opt = j["options"][k]
                items += [(tok, base + i, s, True) for i, tok in enumerate(opt)]
        rows = decode(items)
        for r in rows:
            logits(r)
    took = time.perf_counter() - t
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return took


if __name__ == "__main__":
    main()
