"""Run H's work list seed by seed with the harness's ``run_one`` (the code path of
``python -m benchmarks run``: same ``run_seeds`` pairing, budget 50), one JSON per finished run,
so that finished runs survive a time limit.

    python seeds.py OUTDIR PROBLEMS:OPTIMIZERS:SEEDS [PROBLEMS:OPTIMIZERS:SEEDS ...]

Comma-separated lists; the phases form one priority-ordered work list (each phase ordered
problem > optimiser > seed; a seed list may be given as e.g. ``0`` to order seed-major). Two
processes may run the same list side by side: each run is claimed with an exclusive claim file
before it starts, finished runs are skipped, so the processes share the list as a queue and the
work cut by a time limit is the tail of the list.

The code is imported from ``$H_SRC`` (default /work/main): run H used a ``git archive`` of the
commit it started at (``$H_COMMIT``), so that edits to the working tree during the run could not
reach it. Every searcher module is imported at start and the source of ``search_algs`` hashed into
OUTDIR/code-<pid>.txt."""
import hashlib, json, os, sys, time
SRC = os.environ.get("H_SRC", "/work/main")
sys.path.insert(0, SRC)
from benchmarks import harness, peers, runner
from benchmarks.problems import get_problem
from orchestrator.registry import SEARCHERS, searcher_class

runner._single_thread_torch()
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
work = []
for arg in sys.argv[2:]:
    problems, opts, seeds = (x.split(",") for x in arg.split(":"))
    work += [(p, o, int(s)) for p in problems for o in opts for s in seeds]

for name in SEARCHERS:  # import now: the hashes below are then of the code this process runs
    searcher_class(name)
import search_algs  # noqa: E402
assert search_algs.__file__.startswith(SRC), search_algs.__file__
root = os.path.dirname(search_algs.__file__)
digest = {}
for dirpath, _, files in sorted(os.walk(root)):
    for f in sorted(files):
        if f.endswith(".py"):
            path = os.path.join(dirpath, f)
            digest[os.path.relpath(path, SRC)] = hashlib.sha1(open(path, "rb").read()).hexdigest()[:12]
with open(f"{out}/code-{os.getpid()}.txt", "w") as f:
    f.write(f"git {os.environ.get('H_COMMIT') or runner.git_revision()} (code from {SRC}) at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC\n")
    f.write(" ".join(sys.argv) + "\n")
    f.write(json.dumps(digest, indent=1, sort_keys=True) + "\n")


def claim(path: str) -> bool:
    """Exclusive claim of one run; a claim by a process that no longer exists is taken over."""
    c = path + ".claim"
    for _ in range(2):
        try:
            fd = os.open(c, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(open(c).read() or 0)
                os.kill(pid, 0)
                return False
            except (ProcessLookupError, ValueError):
                os.remove(c)
            except FileNotFoundError:
                pass
    return False


specs = peers.optimizer_specs()
for problem, opt, seed in work:
    p, spec = get_problem(problem), specs[opt]
    why = spec.missing() or spec.refuses(p.space)
    if why:
        skip = f"{out}/{problem}__{opt}__skip.json"
        if not os.path.exists(skip):
            with open(skip, "w") as f:
                json.dump({"problem": problem, "optimizer": opt, "reason": why}, f)
            print(f"skip {opt} on {problem}: {why}", flush=True)
        continue
    path = f"{out}/{problem}__{opt}__{seed}.json"
    if os.path.exists(path) or not claim(path):
        continue
    t0 = time.perf_counter()
    rec = harness.run_one(p, spec, seed, 50)
    with open(path + ".tmp", "w") as f:
        json.dump(rec.to_json(), f)
    os.replace(path + ".tmp", path)
    os.remove(path + ".claim")
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} [{os.getpid()}] {problem} {opt} seed {seed}: "
          f"{time.perf_counter() - t0:.0f} s wall, {rec.cpu_s:.0f} s CPU, "
          f"final {rec.incumbent.get('50')} {rec.error or ''}", flush=True)
print(f"{time.strftime('%H:%M:%S', time.gmtime())} [{os.getpid()}] work list done", flush=True)
