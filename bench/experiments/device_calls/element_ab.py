"""The padded forward's GEMM over x's elements (s87: ops_cuda.cpp element_gemm) against the tap readers, on one
machine: every problem of the public sweep at padding 1..3 that x's layout and the settings let take it (forced on,
explain's gemm_over "elements"; 16-bit x with its plan forced to the narrow epilogue loading x, where C_out allows it),
timed with it forced off (the tap readers' path), forced on, and by the rule, beside the padding-0 forward; each
forward checked against the float64 shortcut. One JSON line a (problem, padding):

    python element_ab.py OUT.jsonl [SECONDS]     # run in a built tree's root (PYTHONPATH=python:bench)

Lines as they finish, so a run cut off at SECONDS keeps what it timed."""
import contextlib
import json
import sys
import time

import torch

sys.path.insert(0, "bench")
from problems import make_random_inputs, random_problems, rel_err  # noqa: E402
from sweep import best_of_rounds, time_ms  # noqa: E402

import fusedlse_cuda  # noqa: E402
from fusedlse_cuda import reference  # noqa: E402
from fusedlse_cuda.planning import forced_element_gemm, forced_plan  # noqa: E402


@contextlib.contextmanager
def elements_forced(x):
    """The GEMM over x's elements forced on, and for 16-bit x its plan forced to the narrow epilogue loading x."""
    with forced_element_gemm(True):
        if x.dtype in (torch.float16, torch.bfloat16):
            with forced_plan("split", "in_epilogue", "narrow_lse"):
                yield
        else:
            yield


def padded_pairs(problems, deadline):
    """(name, problem, padding, inputs) for each (name, problem, seed) of `problems` at each padding 1..3 its shape
    allows, its inputs (make_random_inputs with that seed) made once for all three; none once time.time() passes
    `deadline`."""
    for name, problem, seed in problems:
        shape = problem[0]
        inputs = None
        for padding in (1, 2, 3):
            if time.time() > deadline:
                return
            if min(shape[2] + shape[5] - 1, shape[3] + shape[6] - 1) <= 2 * padding:
                continue
            if inputs is None:
                inputs = make_random_inputs(problem, seed)
            yield name, problem, padding, inputs
        del inputs
        torch.cuda.empty_cache()


def padded_sweep_pairs(deadline, dtypes=None):
    """padded_pairs of every non-empty public-sweep problem (of `dtypes` where given), seeded by its place."""
    yield from padded_pairs(((name, problem, index) for index, (name, problem) in enumerate(random_problems().items())
                             if (dtypes is None or problem[1] in dtypes) and
                             problem[0][0] * problem[0][1] * problem[0][2] * problem[0][3] > 0), deadline)


def forced_ab(inputs, padding, forcings):
    """The padded forward of `inputs` under each of `forcings` ({label: a context manager's factory, or None for the
    rule}): its error against the float64 shortcut, then its time (µs, best of rounds, beside the padding-0 forward
    as "p0"). Returns (errors, times), each {label: value}."""
    x, weight, conv_bias, bias = inputs

    def run(forcing):
        with forcing() if forcing is not None else contextlib.nullcontext():
            return fusedlse_cuda.forward(x, weight, conv_bias, bias, padding=padding)

    truth = reference.tap_shortcut(*(t.double() for t in inputs), padding=padding)
    errs = {label: rel_err(run(forcing), truth) for label, forcing in forcings.items()}
    del truth
    calls = {"p0": lambda: fusedlse_cuda.forward(x, weight, conv_bias, bias)}
    calls.update({label: (lambda forcing=forcing: run(forcing)) for label, forcing in forcings.items()})
    for fn in calls.values():
        fn()
    us = {k: round(v * 1e3, 2) for k, v in best_of_rounds(calls, lambda _, fn: time_ms(fn)).items()}
    return errs, us


def sweep_ab(selects, forcings, fields):
    """The main() of an A/B over the sweep pairs (`python SCRIPT.py OUT.jsonl [SECONDS]` in a built tree's root):
    forced_ab of `forcings` ({label: a context manager's factory, or None for the rule}) on each pair whose rule plan
    (explain) `selects`, one JSON line each as it finishes: name, shape, dtype, layout, padding, x's MiB, the times,
    the errors and fields(plan, weight)'s; a line on stdout too."""
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        for name, problem, padding, inputs in padded_sweep_pairs(deadline):
            x, weight = inputs[:2]
            plan = fusedlse_cuda.explain(x, weight, padding=padding)
            if not selects(plan):
                continue
            errs, us = forced_ab(inputs, padding, forcings)
            row = dict(name=name, shape=list(problem[0]), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us,
                       err={k: float(f"{v:.3g}") for k, v in errs.items()}, **fields(plan, weight))
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, flush=True)


def main():
    out_path = sys.argv[1]
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    with open(out_path, "w") as out:
        for name, problem, padding, inputs in padded_sweep_pairs(deadline):
            shape = problem[0]
            x, weight, conv_bias, bias = inputs
            with elements_forced(x):
                forced = fusedlse_cuda.explain(x, weight, padding=padding)
            if forced.get("gemm_over") != "elements":
                continue
            rule_plan = fusedlse_cuda.explain(x, weight, padding=padding)
            errs, us = forced_ab(inputs, padding, {"taps": lambda: forced_element_gemm(False),
                                                   "elements": lambda: elements_forced(x), "rule": None})
            row = dict(name=name, shape=list(shape), dtype=str(x.dtype).replace("torch.", ""), layout=problem[2],
                       padding=padding, mib=round(x.nbytes / 2**20, 1), us=us,
                       rule=rule_plan.get("gemm_over"), gemm=forced["gemm"].get("epilogue"),
                       reader=forced["gemm"].get("reader"), tap_sums=forced["tap_sums"],
                       err={k: float(f"{v:.3g}") for k, v in errs.items()})
            print(json.dumps(row), file=out, flush=True)
            print(name, padding, row["dtype"], row["layout"], us, row["rule"], row["gemm"], flush=True)


if __name__ == "__main__":
    main()
