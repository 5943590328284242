"""Benchmark of whole builds at scale: per-stage time, studies/s, peak memory, and incremental rebuilds.

What it measures
----------------
For each size in ``--studies`` (default 10,000 and 100,000; reports only) and for one run of
``--image-studies`` studies with DICOMs (default 2,000; 0 skips it), the bench

1. writes a synthetic corpus with ``cxrvqa synth`` (``--seed``, untimed; reused when the work
   folder already holds one of that size and seed);
2. copies the built-in templates ``--template`` (default ``finding_presence,finding_hedged``: the
   largest template, ~11% of the items, and a typical one, ~2%; until 2026-12-07 the typical one was
   ``category_findings``, a list question the per-question balance keeps no item of, so its edit never reached
   validation) into a user template folder, renamed
   ``bench_<id>`` (an id may be defined once) and with their question variants reworded (an exact
   copy's questions would replace the built-in one's items in the de-duplicated dataset), so that
   every build loads them with ``--templates``;
3. runs a **full build** (rules backend) through the real CLI as a subprocess
   (``cxrvqa build --reports ... --report-format jsonl [--images ... --manifest ...] --templates ...
   --out ... --workers W``) into a fresh folder;
4. edits one user template (its version bumped and one question variant added) and runs the same
   command again: a **template rebuild**, which should regenerate and re-validate only that
   template's items; then the same for the next user template;
5. runs the same command once more: the **no-change rebuild** (since 2026-12-03 the CLI finds it up to date and
   starts no run: `cxrvqa.uptodate`; the previous version runs every stage to skip every input).

With ``--previous REV`` (default 4cb08d2, the version the throughput issue measures against; ``''`` for
none) each report-only size is also built by that revision, checked out as a git worktree in the work folder and run by
this venv's interpreter with the worktree first on ``PYTHONPATH``, on the same corpus and with its own
built-in templates copied the same way: the same full build, template rebuilds and no-change rebuild, printed
side by side with this version's (ratio = previous / now), with the targets of the full build's speed-up
(>= 2.5x) and of the rates inside the build (validation >= 20,000 and QA generation >= 50,000 items/s).
With ``--repeats N`` (and a previous version) each report-only size gets N - 1 more full builds per version after
those, the versions taking turns, and the speed-up checked is the ratio of the medians of N: one build's time varies
from run to run by as much as many a change makes (2026-12-07, 2 CPUs, 10k studies: six full builds of three
versions of the same speed, taking turns, 77.2-85.5 s; their pool's CPU 104.7-120.8 s).

Per build: wall time of the subprocess; per-stage seconds and counts (``n_input``, ``n_skipped``,
``n_done``, ``n_rejected``) from the build's ``run_stages`` rows; "in-run other" is the time between
the ``runs`` row's start and finish outside the stage rows (sub-flow overhead, QA balancing, dataset
checks); "start-up" is from the process start to the run's start (imports, the local Prefect
server); "summary" from the run's finish to the process exit (the status tables ``cxrvqa build``
prints). studies/s = studies / full-build wall time. CPU seconds per kind of process (from
/proc/<pid>/stat at each sample) tell how much of the wall time the machine's load took away.

Memory: the process tree of each build is sampled every ``--sample-s`` seconds (0.2) from /proc:
the main ``cxrvqa`` process (its VmHWM, i.e. its exact peak up to the last sample), the pool
workers (children of the forkserver: peak of their summed RSS; the forkserver itself counted
with them), the local Prefect server (VmHWM; where the build took a server an earlier build left running, the
kept server and its keeper, `flows.kept_server`, counted with the tree and their CPU from the build's start: any
keeper of the version's interpreter and Prefect home is taken for the build's, none for a version without them,
before whose builds every keeper of the machine is stopped: an idle kept server takes ~1.7% of a core; `kept_server`
in the JSON, "Prefect server kept from a build before" in the table; `CXRVQA_PREFECT_SERVER_IDLE=0` gives every build
its own as before), and the whole tree (peak of the summed RSS; shared pages count once per process, so this is an
upper bound). The main process's RSS includes
DuckDB's buffer pool, capped by the config's ``duckdb_memory_limit`` (512MB; 256MB in the QA and validate stages,
``duckdb_qa_memory_limit`` and ``duckdb_validate_memory_limit``) during the run. The
samples are also split at the run's start and finish: peak during the run, and peak during the
status summary (which opens the store read-only without that cap).

Baseline, measured in the same run: a straightforward loop in one process over the first
``--baseline-studies`` (500) reports of the first corpus, per study and through the same library
functions the stages call, without batching, process pools or any database write:
``reports.stage.parse_report`` -> ``extraction.stage.extract_study`` + ``graph_rows`` ->
``qa.stage.generate_chunk`` (one study) -> ``validation.stage.validate_studies`` (one study, over
the items the full build stored for it). It leaves out the DuckDB reads and writes, balancing
and Prefect, so it is a lower bound of a naive pipeline's time; its studies/s is extrapolated to
each size. Printed ratios: build studies/s over baseline studies/s; rebuild time over the full
build time of the same size (the baseline of the rebuild targets).

Targets: template rebuild <= 10% of the full build; no-change rebuild <= 5%; peak memory of the
whole tree (and of the main process, printed beside it) at the largest size <= 1.2x that at the
smallest (only when two sizes or more are run). ``--check`` exits 1 when one is missed.

Run from the repository root::

    .venv/bin/python bench/bench_scale.py [--studies 10000,100000] [--image-studies 2000] [--check]
    .venv/bin/python bench/bench_scale.py --studies 2000 --image-studies 200      # quick (make bench-scale)

Corpora and builds go to ``--work`` (default: a new folder under /tmp, removed at the end unless
``--keep``; a folder given with ``--work`` is kept). The image corpus is written at
``--image-scale`` (default 0.5 of a realistic size a side, ~3 MB a DICOM instead of ~12 MB:
2,000 studies make ~3,200 DICOMs, ~10 GB instead of ~39 GB). ``--json PATH`` also writes every
figure as JSON; ``--reprint A.json B.json`` prints the report of saved runs together.

Figures at 98d1125 (2 CPUs, quiet machine, load ~2 from the build itself), full build / largest
template (finding_presence, 11.8% of the items) edited / typical template (category_findings, 1.8%)
edited / no-change rebuild:
- 100,000 studies: 1,161 s = 86.2 studies/s [reports 21, extract 79, qa 275, validate 753, in-run
  other 23, start-up 5, summary 5]; 5.6 M items; / 198 s (17.1%) / 103 s (8.9%) / 21.6 s (1.9%).
  Baseline (per-study loop) 93.8 studies/s: the build is 0.92x of it (on 2 cores, 1,987 CPU s).
- 10,000 studies: 107 s = 93.2 studies/s / 25.3 s (23.6%) / 16.4 s (15.3%) / 10.3 s (9.6%): about
  5 s of every build is start-up (imports, the local Prefect server) and 1.5 s the closing summary.
- 2,000 studies with 3,273 DICOMs at half size: 87 s (images 43) / 18.0 s (20.7%) / 14.1 s (16.2%)
  / 12.1 s (13.9%; 4.3 s re-hash the 9 GB of DICOMs).
- Peak RSS 10,000 -> 100,000 studies: tree 2,364 -> 3,339 MB (1.41x), main 1,300 -> 2,028 MB
  (1.56x; DuckDB's buffer pool reaches its 1 GB cap only at 100k), pool 963 -> 1,184 MB (1.23x).
  With ``--build-config`` setting ``duckdb_memory_limit: 512MB`` (one user template, 4.95 M items):
  100,000 studies 1,023 s (the same ~206 us per item), peak RSS tree 2,755 MB, main 1,459 MB: 1.17x
  the 10k build's tree; but the QA stage's selection of the current keys spills (in-run other 38 vs
  27 s), and the typical template's rebuild took 120.5 s (11.8%).
- Before 470cb72 (the current dataset re-derived by every query, once per validation batch) at
  10,000 studies: 118.5 / 40.0 (33.7%) / 14.4 (12.2%) s.
Side by side with ``--previous 4cb08d2`` at 10,000 studies (2026-12-03, 2 CPUs, load ~1 besides the
builds; after migration 0021 stored only failed checks and the question-only baseline stopped scanning every
answer of an open question per held-out item): full build 99.0 -> 66.8 s (1.48x; validate 61.4 -> 28.6 s for
560,891 -> 213,980 current items, QA 20.3 -> 19.2, in-run other 2.6 -> 5.0: the per-question balance and the
baseline), peak RSS tree 2,402 -> 1,764 MB, database 179 -> 93 MB; largest-template edit 22.3 -> 26.2 s,
typical 13.2 -> 14.3 s, no change 7.6 -> 7.9 s; in the build validation 7,484 items/s and QA generation 32,314
items/s. Before those two changes (same session): full build 97.9 -> 74.0 s, database 179 -> 93 MB after the
first alone; 86.1 s and 172 MB before either.
At 100,000 studies (same code, same day, this version only): 771 s = 129.6 studies/s [reports 20, extract 71,
qa 303, validate 325, in-run other 47, start-up 4, summary 2]; 2.14 M items; largest-template edit 261 s (33.8%;
qa 122 of it), typical 161 s (20.9%; qa 107), no change 17.6 s (2.3%); peak RSS tree 1,766 -> 3,868 MB from 10k
(2.19x), main 755 -> 2,843 MB (3.77x; a likely cause, not measured: the question-only baseline reads every current
item into Python in the main process), pool 811 -> 1,461 MB; database 808 MB.
Side by side at 10,000 and 100,000 studies in one run (2026-12-03 evening, code at 86f11e4: validation's
caches cleared per chunk, the reports input's read skipped when unchanged, a rebuild with nothing to do starting
no run): full build 98.6 -> 65.2 s (1.51x) and 944.4 -> 713.3 s (1.32x); validate 62.0 -> 27.3 and 606.3 -> 273.7
s; QA 20.3 -> 20.0 and 216.1 -> 308.0 s (slower at 100k); largest-template edit 22.4 -> 26.6 and 178.2 -> 267.8 s
(37.5%); typical 13.7 -> 12.5 and 99.1 -> 146.9 s; no change 7.7 -> 0.7 s (1.0%) and 20.6 -> 1.2 s (0.2%: up to
date, no run); peak RSS tree 2,443 -> 1,618 and 3,370 -> 2,332 MB (1.44x from 10k to 100k: pool 644 -> 676 MB,
main 745 -> 1,495 MB, DuckDB's buffer up to its 1 GB cap); database 179 -> 98 and 1,710 -> 841 MB.
2026-12-04 (code 5637d4f: QA's and validation's batch loads narrowed, DuckDB's cap 512MB): 10k side by side 92.4
-> 65.7 s (1.41x; validate 56.0 -> 25.6, qa 19.9 -> 20.6), largest edit 22.0 -> 27.2, typical 14.0 -> 12.7, no
change 7.9 -> 0.7 s, tree 2,418 -> 1,589 MB; 100k this version alone: full 619.0 s (qa 226.4, validate 243.9,
in-run other 48.7), largest edit 201.2 s (32.5%), typical 79.0 s (12.8%), no change 1.3 s, tree 1,931 MB (1.22x
the 10k; main 1,001, pool 685 MB).
2026-12-04, session 17 (batches started ahead, the question-only baseline over distinct items, the current keys and
their pairs in one INSERT): 10k side by side, two runs, 81.4 -> 46.3 s (1.76x) and 87.9 -> 50.7 s (1.73x);
validate 52.3 -> 16.5 and 55.9 -> 17.5 s, qa 16.7 -> 16.1 and 18.5 -> 16.8 s; 12,298-13,050 validated and
37,072-38,634 generated items/s; largest edit 19.4-19.7 s (38.8-42.0%), typical 9.2-9.6 s, no change 0.5-0.6 s;
tree 1,621-1,719 MB. 100k this version alone: full 444.4 s (reports 16.7, extract 49.0, qa 170.9, validate 171.7,
in-run other 30.9), 2.16 M items; largest edit 128.6 s (28.9%: validate 67.1 s for 231k items, in-run other
34.6), typical 50.4 s (11.3%: in-run other 33.2 of it, the balance, selection, baseline and evaluation profile
over the whole dataset), no change 1.1 s (0.2%); tree 1,929 MB (1.12-1.19x the 10k's), main 1,036, pool 688 MB.
The build is CPU-bound on 2 cores (1.77-1.86 CPUs busy on average): only less work makes it faster.
2026-12-05, session 25 (the validate stage under a 256MB DuckDB cap and the worker pool shut down after it, the
shared claims and grammar caches keyed by digests): 100k side by side in one run (e771620): full 847.7 -> 323.9 s
(2.62x; validate 567.7 -> 115.6 s = 18,668 items/s, qa 185.7 -> 110.5 s = 56,565 items/s), largest edit 152.2 ->
76.1 s (23.5%), typical 80.3 -> 33.4 s (10.3%), no change 18.2 -> 0.9 s (0.3%); peak RSS tree 3,388 -> 1,883 MB
(per stage main/pool/tree: qa 997/649/1,870, validate 740/904/1,883; session start: validate 986/988/2,225). 10k
side by side (f0aacc0): full 83.1 -> 35.8 s (2.32x; validate 50.4 -> 11.9 s = 18,045 items/s, qa 17.5 -> 10.9 s),
largest edit 12.2 s (34.0%), typical 8.8 s, no change 0.5 s; tree 2,455 -> 1,627 MB: 100k/10k 1.16x.
2026-12-06, session 29 (a clean clone, quiet machine; the checks grew in sessions 26-29): 100k side by side at f5aa46c:
full 1,022.0 -> 436.6 s (2.34x; validate 673.6 -> 158.7 s = 13,591 items/s, qa 226.6 -> 155.3 s = 40,242 items/s,
in-run other 24.7 -> 41.5 s), largest edit 191.8 -> 96.6 s (22.1%), typical 99.3 -> 42.7 s (9.8%), no change 20.5 ->
1.4 s (0.3%); peak RSS tree 3,465 -> 1,944 MB, 1.16x the 10k build's. 10k side by side at 4229468: full 99.7 -> 49.5 s
(2.01x; validate 61.0 -> 16.9 s = 12,730 items/s, qa 21.3 -> 14.4 s = 43,320 items/s), largest edit 16.4 s (33.1%),
typical 12.3 s, no change 0.7 s (1.4%). Both versions ran ~20% slower than in session 25 on this machine.
2026-12-06, session 33 (5b03d17, load ~0.5 at the start), 10k side by side: full 112.3 -> 55.9 s (2.01x; validate
68.1 -> 19.6 s = 10,961 items/s, qa 24.4 -> 15.6 s = 39,909 items/s), largest edit 17.2 s (30.8%: qa 3.0, validate 4.1,
in-run other 3.8, start-up 5.1, summary 1.1), typical 12.4 s (22.3%), no change 0.9 s (1.6%); tree 2,414 -> 1,597 MB.
Profiles: a validation worker is busy throughout (py-spy: the checks 71% of its samples, reading items into dicts 8%,
the study's graph parsed again 7%; ConText reading of sentences ~20% of check time in one process, 7.5-7.8k items/s a
core), QA generation 24-29k items/s a core in one process; the rest is spread over ~30 checks and the programs.
2026-12-06, session 34 (cc9f44e, load ~1 at the start), 10k side by side: full 97.0 -> 48.2 s (2.01x; validate 61.1 ->
16.2 s = 13,322 items/s, qa 19.8 -> 14.4 s = 43,381 items/s), largest edit 25.6 -> 16.2 s (33.6%: qa 2.9, validate
3.8, in-run other 3.7, start-up 4.7, summary 1.1), typical 14.4 -> 11.4 s (23.6%), no change 9.4 -> 0.7 s (1.4%);
tree 2,460 -> 1,590 MB. ConText reading measured alone: 0.18 ms a distinct sentence (~3.6 CPU s of a 10k build's
20k sentences), not the 20% of check time a profiler's overhead suggests.
2026-12-06, session 35 (be976d4: answers as named tuples, the reader's pattern cue indexed, no block registration at
the local server's start), 10k side by side: full 102.1 -> 48.9 s (2.09x; validate 63.0 -> 16.7 s = 12,876 items/s,
qa 21.3 -> 14.2 s = 43,808 items/s), largest edit 22.2 -> 16.2 s (33.1%), typical 14.2 -> 12.3 s (25.1%), no change
8.5 -> 0.8 s (1.6%); tree 2,411 -> 1,579 MB: the same as cc9f44e within noise (the previous version ran 5% slower).
Where a 10k build's CPU goes (py-spy over the whole process tree, 50 Hz): the workers 68% (validation 29, generation
25, extraction 8, imports 5), the main process 18% (DuckDB writes, balance, loads, start-up), Prefect's server 7%;
both cores are busy throughout but for start-up, the reports stage and the balance, so only less work is faster.
After 80d85de (gc.freeze at exit): 10k full 101.9 -> 49.7 s (2.05x; summary 1.2 -> 0.6 s, typical edit 11.2 s, 22.6%);
100k side by side (be976d4 + 80d85de): full 1,100.3 -> 463.6 s (2.37x; reports 18.1 -> 23.7, extract 69.6 -> 60.6,
qa 245.4 -> 154.6 = 40,442 items/s, validate 733.4 -> 175.2 = 12,316 items/s, in-run other 24.4 -> 43.6), largest
edit 193.8 -> 106.0 s (22.9%: qa 23.6, validate 46.6, in-run other 25.0, reports 4.6), typical 110.9 -> 40.9 s (8.8%,
met), no change 27.7 -> 1.3 s (0.3%, met); peak RSS tree 3,349 -> 1,843 MB, 1.16x the 10k build's 1,583 MB (met).
The QA stage's balance at 100k (full selection, a copy of the build, 512MB cap): 34.9 s wall, 63 CPU s (the
selection 15.3, per-question balance 9.5, question-only baseline 8.9, evaluation thresholds 8.0); the reports stage
parsed in the main process (split_sentences 24% of it, split_sections 12%) while the workers were idle.
2026-12-06, session 36 (batches by their work: a template's rebuild validates and generates up to 5x qa.batch_size
studies a batch; the selection's INSERT with DuckDB's build-side choice off; reports parsed by the workers past 5,000
records): 100k largest-template edit, a copy of the build, min of 3-4 runs: 102.3 -> 90.0 s (validate 46.0 -> 38.3 s),
user CPU 77 -> 63 s. 10k side by side (9a1b8a3): full 110.9 -> 49.2 s (2.26x; the previous version's own time was
98.4-110.9 s over this session's runs, the current one's 49.2-52.9 s), largest edit 25.0 -> 15.9 s (32.4%), typical
15.9 -> 11.8 s, no change 8.2 -> 0.7 s; tree 2,438 -> 1,576 MB. 100k, this version only (9a1b8a3): full 464.1 s
(reports 19.7, extract 56.5, qa 157.4, validate 183.8, in-run other 40.3; 2.37x session 35's 1,100.3 s of the previous
version), largest edit 93.6 s (20.2%: qa 23.5, validate 38.7, in-run other 25.3), typical 42.8 s (9.2%), no change
1.9 s (0.4%); tree 1,853 MB = 1.18x the 10k build's. Where the 100k largest edit's time goes (py-spy): the workers'
study views (generation and validation each build one per study: ~25 of ~126 worker CPU seconds), the balance's
question-only baseline (9.3 s: grouping 1.7M items by their texts), validation's per-study report readings.
2026-12-06, session 38 (d95e1e8: the balance phase's joins no longer spill under the 512MB cap), 100k side by side:
full 1,005.8 -> 425.4 s (2.36x; reports 18.7 -> 18.9, extract 69.2 -> 55.4, qa 221.6 -> 145.8, validate 659.0 ->
173.1, in-run other 26.4 -> 26.7, session 37's 39.5), largest edit 198.8 -> 77.6 s (18.3%), typical 111.4 -> 31.0 s
(7.3%), no change 22.5 -> 1.2 s; tree 3,442 -> 1,968 MB. 100k, this version only (4d3a136: also the QA rows' provenance
and done rows as Arrow): full 414.5 s (main CPU 203 s against 215), largest edit 74.5 s (18.0%), typical 30.9 s, tree
1,837 MB. 10k side by side (4d3a136), two runs: 102.8 -> 52.2 s (1.97x) and 90.3 -> 44.9 s (2.01x); tree 1,643-1,725 MB.
2026-12-06/07, session 39, on a machine ~1.6-2x slower than session 38's (a 20M-step Python loop 2.75 s): 10k side by
side at 321c782 (the first builds on the fresh machine) 160.7 -> 96.8 s (1.66x); at 642f450 (a writer's checkpoints
merge no row groups, a table's parts inserted a row group at a time) 147.0 -> 75.1 s (1.96x; main CPU 56 -> 24 s,
database 179 -> 98 MB), largest edit 36.8 -> 22.9 s (30.6%), typical 21.6 -> 16.8 s, no change 11.9 -> 0.9 s; tree
2,393 -> 1,511 MB. 10k A/B of this version alone, 321c782 vs 642f450 alternating: main CPU 27.8/25.2 -> 23.4/21.7 s,
wall 74.1/67.1 -> 70.4/65.4 s. 100k, this version only (6c3541f, also migration 0029): full 730.7 s [reports 30.2,
extract 85.0, qa 267.1 = 23,408 items/s, validate 301.3 = 7,161 items/s, in-run other 37.0, start-up 7.8, summary
2.3], main CPU 256 s, pool 1,092 s; largest edit 141.4 s (19.4%), typical 56.9 s (7.8%), no change 2.0 s (0.3%);
tree 1,822 MB (1.21x the 10k's 1,511 MB); database 865 MB.
2026-12-07, session 40: 10k side by side with --repeats 3 (b0eff77 against 4cb08d2): full builds 178.8, 177.2, 178.0
-> 88.0, 78.3, 74.7 s, medians 2.27x; this version's builds vary by ~18% run to run, the previous one's by ~1%.
2026-12-07, session 41 (d4bb319: the checks' per-sentence patterns behind literal prefilters), 100k side by side:
full 1,711.1 -> 689.5 s (2.48x; reports 25.2 -> 33.1, extract 127.8 -> 90.7, qa 384.5 -> 250.4 = 24,966 items/s,
validate 1,118.2 -> 268.5 = 8,037 items/s, in-run other 39.1 -> 36.8), largest edit 325.2 -> 129.2 s (18.7%; validate
56.0 s against session 39's 70.6), typical 157.6 -> 246.2 s (in-run other 219.9 s: not seen again, two reruns of the
same edit on copies of the build took 54.0 and 48.6 s of run), no change 39.1 -> 1.7 s; tree 3,379 -> 1,826 MB (1.21x
session 40's 10k 1,513 MB). The balance then counted only a template edit's own candidates (9fad55d).
10k side by side with --repeats 3 (000b33a against 4cb08d2): full builds 156.6, 139.0, 156.1 -> 78.0, 83.3, 78.5 s,
medians 1.99x (this version as in session 40, the previous one 12% faster than then); largest edit 34.8 -> 25.4 s,
typical 21.2 -> 16.0 s, no change 11.7 -> 1.1 s (1.4%); tree 2,392-2,408 -> 1,491-1,529 MB.
2026-12-07, session 42 (0b82c87: the worker forkserver's preload, both versions' bytecode compiled first), 10k with
--repeats 3: full builds 142.6, 145.4, 157.6 -> 61.0, 69.2, 67.3 s (CPU 244-271 -> 110-124 s), medians 2.16x; largest
edit 31.6 -> 16.7 s (27.4%), typical 21.6 -> 12.0 s, no change 11.8 -> 1.0 s; tree 2,395-2,418 -> 1,550-1,553 MB. An
earlier run the same morning (12ebfd6) on a slower machine: 176.2, 169.5, 168.9 -> 96.5, 69.8, 81.8 s (2.07x): the
same code's CPU seconds varied by up to 30% between builds (124 to 164 s).
2026-12-07, session 43, 100k this version only (02bed60): full 562.3 s [reports 22.1, extract 74.6, qa 200.8 = 31,135
items/s, validate 222.9 = 9,679 items/s, in-run other 33.2, start-up 6.7], CPU main 215, pool 826 s; largest edit 97.3 s
(17.3%), typical 43.8 s (7.8%), no change 1.8 s; tree 1,860 MB (qa 939/759, validate 699/937 main/pool MB). With the
pool shut down after extraction and QA (e7b9086, which also had lower validation cache bounds, since reverted): full
574.0 s, tree 1,780 MB (qa 949/660, validate 718/808); its 10k: 70.5 s, tree 1,498 MB (1.19x from 10k to 100k).
2026-12-07, session 44 (migration 0030: the current graph picked by a window over keys; a template edit's items read by
their versions too; QA's pending work without the templates done for every study), 100k this version only: full 685.6 s
[reports 28.6, extract 82.2, qa 242.1, validate 284.3, in-run other 38.9, start-up 7.2, summary 2.3] on a machine slower
than session 43's (pool CPU 1,012 against 826 s for the same work), largest edit 104.9 s (15.3%; in-run other 15.0),
typical 41.4 s (6.0%), no change 2.5 s; tree 1,812 MB (1.20x its 10k's 1,505). 10k side by side with --repeats 3: full
builds 145.6, 132.2, 116.3 -> 78.0, 58.9, 56.0 s, medians 2.24x; largest edit 31.1 -> 21.0 s, typical 18.7 -> 14.2 s, no
change 9.4 -> 0.9 s.
2026-12-07, session 45 (d986a17: session 44's changes, recommitted), 10k side by side with --repeats 3: full builds
182.4, 173.2, 170.8 -> 80.9, 91.0, 80.9 s (CPU 289-309 -> 144-162 s), medians 2.14x; largest edit 43.0 -> 18.9 s,
typical 26.1 -> 13.2 s, no change 14.7 -> 1.2 s; tree 2,406-2,442 -> 1,499-1,504 MB; validation 7,345 items/s, QA 26,039
items/s. 100k this version only: full 658.4 s [reports 25.1, extract 74.4, qa 242.3, validate 271.7 = 7,941 items/s,
in-run other 35.9, start-up 6.8, summary 2.2], CPU main 236, pool 974 s; largest edit 116.5 s (17.7%: qa 32.0, validate
58.4, in-run other 16.0, start-up 7.8), typical 44.7 s (6.8%), no change 2.2 s (0.3%); tree 1,812 MB (1.20x the 10k's
1,504).
2026-12-07, session 46 (455afe2), on a machine ~1.6x faster than session 45's (its 100k build 389 against 658 s),
100k side by side: full 1,004.1 -> 389.2 s (2.58x; reports 17.6 -> 14.6, extract 69.1 -> 52.5, qa 220.4 -> 129.6 =
48,238 items/s, validate 660.2 -> 161.7 = 13,346 items/s), largest edit 198.5 -> 62.5 s (16.1%), typical 110.3 -> 23.2
s (6.0%), no change 23.0 -> 1.2 s (0.3%); tree 3,532 -> 1,940 MB, database 1,710 -> 866 MB. An earlier run of this
version alone that day: full 415.8 s (2.41x against the 1,004.1), largest edit 65.1 s (15.7%), tree 1,940 MB. 10k side
by side with --repeats 3: full builds 98.4, 101.0, 103.5 -> 47.6, 45.6, 47.4 s (CPU 168-173 -> 82-86 s), medians 2.13x
(per pair 2.07, 2.22, 2.18x); largest edit 24.6 -> 13.0 s, typical 14.4 -> 8.6 s, no change 8.2 -> 0.6 s; tree
2,380-2,424 -> 1,530-1,539 MB; validation 12,969 items/s, QA 45,702. The 100k tree is 1.27x the 10k's (1,940 against
1,533 MB; both stages above 1.2x: QA 1,912 MB, main 1,011 against 672; validation 1,940 MB, pool 992 against 764).
With the QA stage's DuckDB cap at 256MB and each pool replaced after 100 tasks a worker (9a197b9; one 100k build,
alone): full 425.0 s [qa 137.9, validate 184.4], largest edit 66.7 s (15.7%), typical 25.1 s, no change 1.3 s; tree
1,779 MB = 1.16x the 10k's 1,533 (qa 1,535: main 699; validate 1,779: pool 869). Its 10k build: 46.5 s [qa 13.5,
validate 16.9], tree 1,530 MB (QA's main 627 against 672 MB; no pool replaced: ~20 tasks a worker), 1,779 / 1,530 =
1.16x. The share then became 25,000 studies a worker (the same at 2 workers: 100 tasks of 250 studies), since a
task's size depends on the stage and the number of workers (an image conversion is one file). 100k of that (6188eed,
alone): full 394.2 s [reports 13.8, extract 50.8, qa 131.2, validate 167.1, in-run other 25.8, start-up 4.2], largest
edit 61.9 s (15.7%), typical 24.1 s (6.1%), no change 1.3 s; tree 1,803 MB (qa 1,534, validate 1,803: pool 878) = 1.18x
the 10k's 1,530. The typical template then became finding_hedged (category_findings kept no item, so its edit
never reached validation): 10k side by side (c3ab8dc): full 104.8 -> 50.0 s (2.09x), largest edit 23.4 -> 13.5 s,
typical edit 14.8 -> 10.0 s (20.0%: qa 1.6, validate 0.9 for 4,240 items, in-run other 2.5, start-up 4.3), no change
7.8 -> 0.6 s; tree 2,400 -> 1,532 MB.
2026-12-07, session 47 (e545a6d: the local Prefect server kept for the next build, `flows.kept_server`), 10k side by
side with --repeats 3, every keeper stopped before each previous-version build: full builds 102.4, 110.3, 100.8 ->
44.8, 48.9, 45.6 s (the last one taking a kept server: prefect CPU 1.8 against 4.9-5.6 s), medians 2.25x; largest edit
26.1 -> 10.4 s, typical 16.5 -> 6.9 s (both taking the kept server: start-up 2.2 against 5.1-5.4 s), no change 8.6 ->
0.6 s; tree 2,466 -> 1,623 MB (the kept server's ~200 MB in it); validation 14,190 items/s, QA 49,649. 100k this version
alone, every build taking a kept server: full 401.6 s [qa 135.4, validate 170.3, in-run other 25.3, start-up 2.5],
largest edit 59.6 s (14.8%: qa 17.5, validate 30.1, in-run other 8.6, start-up 2.4), typical 31.7 s (7.9%), no change
1.6 s; tree 1,898 MB.
2026-12-07, session 48 (0c12f4a: the pool's workers read the report sentences while the QA items are balanced,
`validate_stage.read_ahead`): 100k side by side, same run: full 980.7 -> 363.2 s (2.70x) [validate 635.2 -> 145.5 =
15,118 items/s, qa 223.4 -> 121.9 = 51,939 items/s, in-run other 25.5 -> 30.5], largest edit 187.3 -> 57.5 s (15.8%),
typical 108.6 -> 31.0 s (8.5%), no change 21.9 -> 1.3 s; tree 3,355 -> 1,861 MB (1.17x the 10k's 1,590). The same that
morning at e9cff92: full 989.2 -> 401.7 s (2.46x; validate 176.0 s). 10k side by side with --repeats 3: full builds
88.0, 89.9, 88.7 -> 42.4, 41.1, 38.7 s, medians 2.16x (the previous version ~12% faster than in session 47 on this
machine), largest edit 20.8 -> 10.0 s, typical 13.1 -> 7.0 s, no change 7.5 -> 0.6 s; validation 17,018 items/s, QA
54,868. Against e9cff92 at 10k, 5 builds each alternated: medians 42.2 -> 40.9 s (1.03x).
``make bench-scale`` (2,000 studies, also by 4cb08d2, + 200 with images) takes ~6 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = Path(sys.executable).parent / "cxrvqa"
PREVIOUS = "4cb08d2"  # the version the throughput issue measures against


@dataclass(frozen=True)
class Version:
    """The code a build runs: this checkout, or a git revision checked out in a worktree (`--previous`), run by
    this venv's interpreter with the worktree first on the path."""

    label: str
    command: tuple[str, ...]  # the CLI
    env: dict[str, str]
    questions: Path  # its built-in question templates
    suffix: str  # of its build and template folders
    cwd: Path  # the build runs here: `python -c` puts the working folder first on the path (flows/)


def checkout_state() -> str:
    """HEAD and the uncommitted changes of this checkout: the code the "now" builds run (compared at the end, since
    an edit during a run changes what its later builds run)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD"], capture_output=True, text=True, check=False)
    return hashlib.sha256((head.stdout + diff.stdout).encode()).hexdigest()


def this_version() -> Version:
    return Version("now", (str(CLI),), {}, ROOT / "prompts" / "questions", "", ROOT)


def previous_version(revision: str, work: Path) -> Version:
    """A worktree of `revision` in the work folder (reused when there)."""
    tree = work / f"previous-{revision}"
    if not (tree / "src" / "cxrvqa").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), revision],
            check=True,
            capture_output=True,
        )
    return Version(
        f"previous {revision}",
        (sys.executable, "-c", "import cxrvqa.cli as c; getattr(c, 'main', c.app)()"),  # its console script's entry
        {"PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"},  # flows/ is imported from the repository root
        tree / "prompts" / "questions",
        "-previous",
        tree,
    )


def compile_sources(version: Version) -> None:
    """The version's sources' bytecode written before its builds (`compileall`), as an installed package's is: where
    PYTHONDONTWRITEBYTECODE is set (this machine) every process compiled them again, a cost of the machine's
    setting, not of either version (`make install` compiles this checkout's)."""
    folders = [str(version.cwd / "src"), str(version.cwd / "flows")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True, capture_output=True)


TARGET_TEMPLATE_SHARE = 0.10
TARGET_NO_CHANGE_SHARE = 0.05
TARGET_MEMORY_GROWTH = 1.2
TARGET_SPEEDUP = 2.5  # full build, previous version / this one
TARGET_VALIDATE_RATE = 20_000  # items/s inside the build, writes included
TARGET_QA_RATE = 50_000
WARMUP_STUDIES = 20


#: What a kept Prefect server's keeper has in its command line (`flows.kept_server`).
KEEPER = "flows.kept_server"


class TreeSampler:
    """Samples the RSS of a process and its descendants from /proc, by kind: main, pool, prefect, other."""

    def __init__(self, root: int, every_s: float, keeper: tuple[str, str] | None = None) -> None:
        """``keeper``: what the command line of the version's kept Prefect server's keeper starts with and holds
        (`keeper_of`; None: a version without them)."""
        self.root, self.every_s, self.keeper = root, every_s, keeper
        self.peaks_kb = {"main": 0, "pool": 0, "prefect": 0, "other": 0, "tree": 0}
        self.pool_pids: set[int] = set()
        self.cpu_ticks: dict[int, tuple[str, int]] = {}  # pid -> (kind, user + system clock ticks)
        self.series: list[tuple[float, int, int, int]] = []  # (time, main RSS, pool RSS, tree RSS) in kB
        self.kept_before: dict[int, int] = {}  # pid -> CPU clock ticks of a kept server's processes at the start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _processes() -> dict[int, tuple[int, int, int, str, int]]:
        """pid -> (parent pid, VmRSS kB, VmHWM kB, command line, user + system CPU clock ticks)."""
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as handle:
                    fields = dict(line.split(":", 1) for line in handle if ":" in line)
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read().rsplit(")", 1)[1].split()  # fields after the command name
            except OSError:
                continue
            kb = {name: int(fields.get(name, "0 kB").split()[0]) for name in ("VmRSS", "VmHWM")}
            found[int(entry)] = (int(fields["PPid"]), kb["VmRSS"], kb["VmHWM"], command, int(stat[11]) + int(stat[12]))
        return found

    def _kind(self, pid: int, processes: dict[int, tuple[int, int, int, str, int]]) -> str | None:
        """The kind of a descendant of the root, or of a kept Prefect server's keeper of the version's interpreter
        (`flows.kept_server`: the build takes a server an earlier build left running; None for any other process)."""
        kind = None
        while pid in processes and pid != self.root:
            command = processes[pid][3]
            if self.keeper is not None and command.startswith(self.keeper[0]) and self.keeper[1] in command:
                return "prefect"
            if "forkserver" in command or "multiprocessing" in command:
                kind = "pool"
            elif kind is None and ("prefect" in command or "uvicorn" in command):
                kind = "prefect"
            pid = processes[pid][0]
        return (kind or "other") if pid == self.root else None

    def sample(self) -> None:
        processes = self._processes()
        sums = {"pool": 0, "prefect": 0, "other": 0}
        for pid, (_, rss, hwm, _, ticks) in processes.items():
            if pid == self.root:
                self.peaks_kb["main"] = max(self.peaks_kb["main"], hwm)
                self.cpu_ticks[pid] = ("main", ticks)
                continue
            kind = self._kind(pid, processes)
            if kind is None:
                continue
            # a kind found once sticks: a process just started (not yet exec'd) or exiting reads as "other"
            known = self.cpu_ticks.get(pid, ("other", 0))[0]
            self.cpu_ticks[pid] = (kind if kind != "other" else known, ticks)
            if kind == "pool":
                self.pool_pids.add(pid)
            if kind == "prefect":
                self.peaks_kb["prefect"] = max(self.peaks_kb["prefect"], hwm)
            sums[kind] += rss
        main_rss = processes.get(self.root, (0, 0, 0, "", 0))[1]
        for kind in ("pool", "other"):
            self.peaks_kb[kind] = max(self.peaks_kb[kind], sums[kind])
        self.peaks_kb["tree"] = max(self.peaks_kb["tree"], main_rss + sum(sums.values()))
        self.series.append((time.time(), main_rss, sums["pool"], main_rss + sum(sums.values())))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> "TreeSampler":
        """Starts sampling; a kept server that runs already is the build's from now on (its CPU counted from here)."""
        processes = self._processes()
        self.kept_before = {
            pid: ticks for pid, (_, _, _, _, ticks) in processes.items() if self._kind(pid, processes) == "prefect"
        }
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peaks_between(
        self, start: float, end: float, leaving_out: Sequence[tuple[float, float]] = ()
    ) -> dict[str, int]:
        """Peak sampled RSS (MB) of main, pool and tree between two times (time.time()), leaving out the samples
        that a window of ``leaving_out`` holds."""
        inside = [
            s for s in self.series if start <= s[0] <= end and not any(a <= s[0] <= b for a, b in leaving_out)
        ] or [(0.0, 0, 0, 0)]
        return {kind: max(s[i] for s in inside) // 1024 for i, kind in ((1, "main"), (2, "pool"), (3, "tree"))}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds by kind, as of each process's last sample."""
        seconds = {"main": 0.0, "pool": 0.0, "prefect": 0.0, "other": 0.0}
        for pid, (kind, ticks) in self.cpu_ticks.items():
            seconds[kind] += (ticks - self.kept_before.get(pid, 0)) / os.sysconf("SC_CLK_TCK")
        return {kind: round(value, 1) for kind, value in seconds.items()}


def synth(n_studies: int, folder: Path, *, images: int, seed: int, image_scale: float, workers: int) -> dict:
    """A corpus of ``n_studies`` (DICOMs for the first ``images``); reused when ``folder`` holds the same one."""
    summary = folder / "synth.json"
    if summary.exists():
        known = json.loads(summary.read_text())
        if (known["studies"], known["image_studies"], known["seed"], known["image_scale"]) == (
            n_studies,
            images,
            seed,
            image_scale,
        ):
            return {"seconds": None, "reused": True, **_corpus_sizes(known)}
        shutil.rmtree(folder)
    start = time.perf_counter()
    command = [
        str(CLI),
        "synth",
        "--studies",
        str(n_studies),
        "--out",
        str(folder),
        "--seed",
        str(seed),
        "--images",
        str(images),
        "--workers",
        str(workers),
        "--image-scale",
        str(image_scale),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "reused": False, **_corpus_sizes(json.loads(summary.read_text()))}


def _corpus_sizes(summary: dict) -> dict:
    return {"images": summary["images"], "image_gb": round(summary["image_bytes"] / 1e9, 2)}


def user_template(folder: Path, template_id: str, questions: Path) -> Path:
    """A copy of a built-in template (of the version built) under a new id and with reworded questions, in a user
    template folder."""
    data = yaml.safe_load((questions / f"{template_id}.yaml").read_text())
    data["id"] = f"bench_{template_id}"

    # questions of its own: the current dataset keeps one item per (image, question), so an exact copy
    # would take over the built-in template's items and tie the two templates' rebuilds together
    def reword(question: str) -> str:
        return f"According to this radiograph, {question[:1].lower()}{question[1:]}"

    data["variants"] = [reword(v) for v in data["variants"]]
    for example in data.get("examples", []):  # its worked examples ask the reworded questions (checked on load)
        if "question" in example:
            example["question"] = reword(example["question"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench_{template_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def user_templates(folder: Path, template_csv: str, questions: Path) -> list[Path]:
    """A fresh folder of the `user_template` copies of the built-in templates of ``template_csv`` (ids, comma
    separated)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return [user_template(folder, t.strip(), questions) for t in template_csv.split(",") if t.strip()]


def edit_template(path: Path) -> None:
    """The user's edit: one more question variant, version bumped."""
    data = yaml.safe_load(path.read_text())
    data["version"] += 1
    data["variants"].append(f"Looking at this study: {data['variants'][0]}")
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_build(
    command: list[str], db: Path, sample_s: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict:
    """Run one build subprocess; its wall time, memory by process kind and what its run did (a build that found
    itself up to date starts no run: `up_to_date`, no stages)."""
    previous = last_run_id(db)
    keeper = keeper_of(command, cwd)
    if keeper is None:
        stop_kept_servers()
    start, started_at = time.perf_counter(), time.time()
    log = db.parent.with_name(db.parent.name + ".log")
    with open(log, "a") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            cwd=cwd,
        )
        with TreeSampler(process.pid, sample_s, keeper) as sampler:
            returncode = process.wait()
    seconds, finished_at = time.perf_counter() - start, time.time()
    if returncode != 0:
        sys.stderr.write(log.read_text()[-5000:])
        raise SystemExit(f"build failed ({returncode}): {' '.join(command)}; log {log}")
    mb = {kind: kb // 1024 for kind, kb in sampler.peaks_kb.items()}
    run = last_run(db, previous)
    if run["up_to_date"]:  # no run: the whole command is the CLI's check and the last run's status
        run_started = run_finished = finished_at
        run.pop("run_started"), run.pop("run_finished")
    else:  # outside the run's own start and finish: imports and Prefect start-up before, the CLI's summary after
        run_started, run_finished = run.pop("run_started"), run.pop("run_finished")
    run["before_run_s"] = round(run_started - started_at, 2)
    run["after_run_s"] = round(finished_at - run_finished, 2)
    run["rss_in_run_mb"] = sampler.peaks_between(run_started, run_finished)
    run["rss_summary_mb"] = sampler.peaks_between(run_finished, finished_at)
    windows = []
    for stage in run.get("stages", {}).values():  # where the peaks are: each stage's own (its window's samples)
        started, finished = stage.pop("window")
        if started is not None and finished is not None:
            stage["rss_mb"] = sampler.peaks_between(started, finished)
            windows.append((started, finished))
    if windows:  # and the run's time outside them (QA balancing, the dataset checks)
        run["rss_outside_stages_mb"] = sampler.peaks_between(run_started, run_finished, leaving_out=windows)
    return {
        "seconds": round(seconds, 2),
        "kept_server": bool(sampler.kept_before),  # the build took a server an earlier one left running
        "rss_mb": mb,
        "cpu_s": sampler.cpu_seconds(),
        "pool_processes": len(sampler.pool_pids),
        **run,
    }


def keeper_of(command: list[str], cwd: Path | None) -> tuple[str, str] | None:
    """What the command line of a kept Prefect server's keeper that a build of ``command`` takes starts with (its
    interpreter's folder) and holds (its lease in Prefect's home), for a version that keeps servers (None for one
    that does not)."""
    if not (cwd or ROOT).joinpath("flows", "kept_server.py").is_file():
        return None
    # flows.prefect_env's default home, not imported: its defaults would reach the previous version's builds
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = Path(os.environ.get("PREFECT_HOME") or cache / "cxrvqa" / "prefect").expanduser().resolve()
    return f"{Path(command[0]).parent}{os.sep}", f"--lease {home}{os.sep}cxrvqa-server-"


def stop_kept_servers() -> None:
    """Stops every kept Prefect server's keeper (and so its server) of this machine, before a build of the previous
    version: an idle kept server takes ~1.7% of a core, which the previous version's builds would pay for the
    version that keeps it."""
    found = subprocess.run(["pgrep", "-f", KEEPER], capture_output=True, text=True)
    for pid in map(int, found.stdout.split()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while subprocess.run(["pgrep", "-f", KEEPER], capture_output=True).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def last_run_id(db: Path) -> str | None:
    """The latest run of a build's database (None: no database yet)."""
    import duckdb

    if not db.is_file():
        return None
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return found[0] if found else None


def last_run(db: Path, previous: str | None = None) -> dict:
    """The latest run's status, per-stage rows and item counts, read from the build's database; a latest run that
    is ``previous`` (the build started none: up to date) has no stages and wrote nothing."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        run_id, status, run_started, run_finished = con.execute(
            "SELECT run_id, status, epoch(started_at), epoch(finished_at) FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        up_to_date = run_id == previous
        if up_to_date:
            run_id, status = None, "up to date"
        stages = {
            stage: {
                "seconds": round(seconds or 0.0, 2),
                "window": [started, finished],
                "n_input": n_input,
                "n_skipped": n_skipped,
                "n_done": n_done,
                "n_rejected": n_rejected,
            }
            for stage, seconds, n_input, n_skipped, n_done, n_rejected, started, finished in con.execute(
                "SELECT stage, seconds, n_input, n_skipped, n_done, n_rejected, epoch(started_at), "
                "epoch(finished_at) FROM run_stages "
                "WHERE run_id = ? ORDER BY started_at",
                [run_id],
            ).fetchall()
        }
        items_by_template = dict(
            con.execute("SELECT template_id, count(*) FROM current_qa_items GROUP BY 1").fetchall()
        )
        counts = {
            "reports": con.execute("SELECT count(*) FROM current_reports").fetchone()[0],
            "images": con.execute("SELECT count(*) FROM current_images").fetchone()[0],
            "current_items": sum(items_by_template.values()),
            "user_template_items": {t: n for t, n in items_by_template.items() if t.startswith("bench_")},
            "items_written_this_run": con.execute(
                "SELECT count(*) FROM qa_items WHERE run_id = ?", [run_id]
            ).fetchone()[0],
            "validation_rows_this_run": con.execute(
                "SELECT count(*) FROM validation_results WHERE run_id = ?", [run_id]
            ).fetchone()[0],
        }
    finally:
        con.close()
    return {
        "run_id": run_id,
        "status": status,
        "up_to_date": up_to_date,
        "run_started": run_started,
        "run_finished": run_finished,
        "stages": stages,
        "counts": counts,
        "db_mb": db.stat().st_size // 2**20,
    }


def scale_run(n_studies: int, n_images: int, args: argparse.Namespace, work: Path, version: Version) -> dict:
    """Corpus, full build, one rebuild per edited template and the no-change rebuild of one size, by one version
    of the code (the corpus is shared)."""
    name = f"{n_studies}" + (f"-img{n_images}" if n_images else "")
    corpus = work / f"synth-{name}"
    corpus_info = synth(
        n_studies, corpus, images=n_images, seed=args.seed, image_scale=args.image_scale, workers=args.workers
    )
    templates = work / f"templates-{name}{version.suffix}"
    template_files = user_templates(templates, args.template, version.questions)
    out = work / f"build-{name}{version.suffix}"
    fresh_out(out)
    command = build_command(version, corpus, templates, out, args, n_images)
    made = "reused" if corpus_info["reused"] else f"written in {corpus_info['seconds']} s"
    db, who = out / "cxrvqa.duckdb", f"{name} ({version.label})"
    print(f"  {who}: corpus {made}; full build ...", flush=True)
    full = run_build(command, db, args.sample_s, version.env, version.cwd)
    print(f"  {who}: full build {full['seconds']} s", flush=True)
    rebuilds = []
    for template_file in template_files:
        edit_template(template_file)
        rebuilds.append(
            {"template": template_file.stem, **run_build(command, db, args.sample_s, version.env, version.cwd)}
        )
        print(f"  {who}: {template_file.stem} rebuild {rebuilds[-1]['seconds']} s", flush=True)
    no_change = run_build(command, db, args.sample_s, version.env, version.cwd)
    print(f"  {who}: no-change rebuild {no_change['seconds']} s", flush=True)
    return {
        "version": version.label,
        "name": name,
        "studies": n_studies,
        "image_studies": n_images,
        "corpus": corpus_info,
        "corpus_dir": str(corpus),
        "db": str(out / "cxrvqa.duckdb"),
        "templates_dir": str(templates),
        "full": full,
        "template_rebuilds": rebuilds,
        "no_change": no_change,
    }


def fresh_out(out: Path) -> None:
    """A build's folder and its log, removed (a full build starts from nothing)."""
    shutil.rmtree(out, ignore_errors=True)
    out.with_name(out.name + ".log").unlink(missing_ok=True)


def build_command(
    version: Version, corpus: Path, templates: Path, out: Path, args: argparse.Namespace, n_images: int = 0
) -> list[str]:
    """The CLI build of ``corpus`` into ``out`` by ``version``."""
    command = [
        *version.command,
        "build",
        "--reports",
        str(corpus / "reports.jsonl"),
        "--report-format",
        "jsonl",
        "--templates",
        str(templates),
        "--out",
        str(out),
        "--workers",
        str(args.workers),
    ]
    if n_images:
        command += ["--images", str(corpus / "dicom"), "--manifest", str(corpus / "manifest.csv")]
    if args.build_config:
        command += ["--config", str(args.build_config.resolve())]
    return command


def repeat_full_builds(runs: list[dict], versions: list[Version], args: argparse.Namespace, work: Path) -> None:
    """``--repeats`` - 1 more full builds of each report-only size by each version, after the first pass (see the
    module docstring), the versions taking turns in the order now, previous, previous, now, now, ...: a drift of the
    machine's speed reaches both alike. Each run's `full_repeats` holds every full build's seconds, CPU and peak tree
    RSS, its first pass's first. Each repeat builds into a fresh folder with fresh, unedited copies of the user
    templates (as the first pass's full build), both removed after with the build's log. Nothing without a previous
    version to compare with."""
    if len(versions) < 2:
        return
    runs_in_turn = [r for r in runs if not r["image_studies"]]
    for repeat in range(1, args.repeats):
        for run in runs_in_turn[::-1] if repeat % 2 else runs_in_turn:
            version = next(v for v in versions if v.label == run["version"])
            out, templates = (work / f"{kind}-{run['name']}{version.suffix}-repeat" for kind in ("build", "templates"))
            fresh_out(out)
            user_templates(templates, args.template, version.questions)
            command = build_command(version, Path(run["corpus_dir"]), templates, out, args)
            full = run_build(command, out / "cxrvqa.duckdb", args.sample_s, version.env, version.cwd)
            run.setdefault("full_repeats", [_repeat_figures(run["full"])]).append(_repeat_figures(full))
            print(f"  {run['name']} ({run['version']}): full build, repeat {repeat}: {full['seconds']} s", flush=True)
            fresh_out(out)
            shutil.rmtree(templates, ignore_errors=True)


def _repeat_figures(full: dict) -> dict:
    return {"seconds": full["seconds"], "cpu_s": full["cpu_s"], "tree_mb": full["rss_mb"]["tree"]}


def run_baseline(corpus: Path, db: Path, templates: Path, n_studies: int) -> dict:
    """The per-study loop (see the module docstring), in this process; DuckDB reads are done before timing."""
    from datetime import datetime, timezone
    from itertools import islice

    import duckdb

    from cxrvqa.config import load_config
    from cxrvqa.extraction import stage as extract_stage
    from cxrvqa.qa import stage as qa_stage
    from cxrvqa.reports import stage as report_stage
    from cxrvqa.reports.loaders import RawReport, load_reports
    from cxrvqa.validation import stage as validate_stage

    with tempfile.TemporaryDirectory(prefix="bench-scale-baseline-") as tmp:
        config = load_config(
            None,
            {
                "out_dir": tmp,
                "reports": str(corpus / "reports.jsonl"),
                "report_format": "jsonl",
                "qa": {"template_dirs": [str(templates)]},
            },
        )
    reports_context, extract_context = report_stage.prepare(config), extract_stage.prepare(config)
    qa_context, validate_context = qa_stage.prepare(config), validate_stage.prepare(config)
    template_ids = frozenset(t.id for t, _ in qa_context.templates)
    records = [
        r for r in islice(load_reports(config.reports, "jsonl"), n_studies + WARMUP_STUDIES) if isinstance(r, RawReport)
    ]
    con = duckdb.connect(str(db), read_only=True)
    fields = ", ".join(validate_stage.ITEM_FIELDS)
    stored: dict[str, list[dict]] = {}
    cursor = con.execute(
        f"SELECT {fields}, template_version, input_hash, NULL AS judge_grade, NULL AS judge_weakest "
        "FROM current_qa_items WHERE study_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY study_id, item_id",
        [[r.study_id for r in records]],
    )
    names = [d[0] for d in cursor.description]
    for row in cursor.fetchall():
        stored.setdefault(row[names.index("study_id")], []).append(dict(zip(names, row, strict=True)))
    con.close()

    def one(report: RawReport) -> int:
        now = datetime.now(timezone.utc)
        row, sentences = report_stage.parse_report(report, reports_context, "baseline", "baseline")
        study = extract_stage.StudyInput(
            report.study_id,
            row["report_hash"],
            row["parser_version"],
            row["indication"],
            tuple((s["sentence_id"], s["section"], s["text"], s["start"], s["end"], s["deid_only"]) for s in sentences),
        )
        graph, codes = extract_stage.extract_study(study)
        graph_row = extract_stage.graph_rows(study, graph, codes, extract_context, "baseline", now)["scene_graphs"][0]
        qa_input = qa_stage.StudyQAInput(
            report.study_id,
            report.patient_id,
            graph_row["graph_id"],
            graph_row["input_hash"],
            graph_row["graph"],
            (),
            template_ids,
        )
        items, _, _ = qa_stage.generate_chunk([qa_input], qa_context.settings, "rules")
        payload = validate_stage.StudyPayload(
            report.study_id,
            report.patient_id,
            graph_row["graph"],
            tuple(codes),
            (),
            [dict(item) for item in stored.get(report.study_id, [])],
        )
        validate_stage.validate_studies([payload], validate_context, "baseline", now)
        return items.num_rows

    for report in records[:WARMUP_STUDIES]:  # imports, spaCy and vocabularies load here, untimed
        one(report)
    timed = records[WARMUP_STUDIES:]
    start = time.perf_counter()
    n_generated = sum(one(report) for report in timed)
    seconds = time.perf_counter() - start
    n_validated = sum(len(stored.get(r.study_id, [])) for r in timed)
    return {
        "studies": len(timed),
        "seconds": round(seconds, 2),
        "studies_per_s": round(len(timed) / seconds, 1),
        "items_generated": n_generated,
        "items_validated": n_validated,
    }


def _baseline_child(run: dict, n_studies: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child-baseline",
        run["corpus_dir"],
        run["db"],
        run["templates_dir"],
        "--baseline-studies",
        str(n_studies),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(2)
    return json.loads(done.stdout.strip().splitlines()[-1])


STAGE_ORDER = ("images", "reports", "extract", "boxes", "qa", "validate", "judge")


def _stage_cells(build: dict) -> str:
    stages = build["stages"]
    cells = [f"{name} {stages[name]['seconds']:.1f}" for name in STAGE_ORDER if name in stages]
    outside = build["before_run_s"] + build["after_run_s"]
    between = build["seconds"] - outside - sum(s["seconds"] for s in stages.values())
    return ", ".join(
        [
            *cells,
            f"in-run other {between:.1f}",
            f"start-up {build['before_run_s']:.1f}"
            + (" (Prefect server kept from a build before)" * build.get("kept_server", False)),
            f"summary {build['after_run_s']:.1f}",
        ]
    )


def _redone(build: dict) -> str:
    if build.get("up_to_date"):
        return "nothing: up to date, no run started (the CLI compared the inputs' stats and showed the last run)"
    return "; ".join(
        f"{name} {s['n_input']:,} in / {s['n_skipped']:,} skipped / {s['n_done']:,} done"
        for name, s in build["stages"].items()
    )


def report(runs: list[dict], baseline: dict | None) -> bool:
    """Print the table and the targets; True when every target checked is met."""
    ok = True
    print(
        "\nfull builds (rules backend; seconds per stage from run_stages; 'in-run other': the run's time outside "
        "its stage rows (sub-flows, QA balancing, dataset checks); 'start-up': process start to the run's start "
        "(imports, Prefect server); 'summary': the run's end to process exit (the CLI's status tables)):"
    )
    for run in runs:
        full = run["full"]
        rate = run["studies"] / full["seconds"]
        mb = full["rss_mb"]
        print(
            f"  {_who(run):>12}: {full['seconds']:8.1f} s = {rate:6.1f} studies/s [{_stage_cells(full)}]; "
            f"{full['counts']['current_items']:,} current items, {full['counts']['images']:,} images; "
            f"peak RSS main {mb['main']:,} MB, pool {mb['pool']:,} MB ({full['pool_processes']} processes), "
            f"prefect {mb['prefect']:,} MB, tree {mb['tree']:,} MB; database {full['db_mb']:,} MB"
        )
        if "rss_in_run_mb" in full:
            inside, after = full["rss_in_run_mb"], full["rss_summary_mb"]
            print(
                f"  {'':>12}  peak RSS sampled during the run: main {inside['main']:,} MB, pool "
                f"{inside['pool']:,} MB, tree {inside['tree']:,} MB; during the status summary: main "
                f"{after['main']:,} MB"
            )
        staged = {name: stage["rss_mb"] for name, stage in full["stages"].items() if "rss_mb" in stage}
        if staged:
            if "rss_outside_stages_mb" in full:
                staged["in-run other"] = full["rss_outside_stages_mb"]
            cells = ", ".join(f"{name} {mb['main']:,}/{mb['pool']:,}/{mb['tree']:,}" for name, mb in staged.items())
            print(f"  {'':>12}  peak RSS per stage (main/pool/tree MB): {cells}")
        if "cpu_s" in full:
            cpu = full["cpu_s"]
            print(
                f"  {'':>12}  CPU seconds: main {cpu['main']:,.0f}, pool {cpu['pool']:,.0f}, prefect "
                f"{cpu['prefect']:,.0f} (total {sum(cpu.values()):,.0f} = {sum(cpu.values()) / full['seconds']:.2f} "
                f"CPUs on average)"
            )
        if baseline and not run["image_studies"]:  # the baseline does no image work
            naive = run["studies"] / baseline["studies_per_s"]
            print(
                f"  {'':>12}  baseline extrapolated: {naive:,.0f} s; ratio build/baseline studies/s "
                f"{rate / baseline['studies_per_s']:.2f}x"
            )
    print("\nrebuilds (share of the same size's full build; targets checked on this version's builds):")
    for run in runs:
        full_s = run["full"]["seconds"]
        # runs saved before several templates were edited have one "template" rebuild; `--template ''` has none
        rebuilds = (
            run["template_rebuilds"]
            if "template_rebuilds" in run
            else [{"template": "bench_template", **run["template"]}]
        )
        builds = [(f"{b['template']} edited", b, TARGET_TEMPLATE_SHARE) for b in rebuilds]
        for label, build, target in [*builds, ("no change", run["no_change"], TARGET_NO_CHANGE_SHARE)]:
            share = build["seconds"] / full_s
            ok &= share <= target or not _is_now(run)
            counts = build["counts"]
            users = counts["user_template_items"]
            users = users if isinstance(users, dict) else {"bench_template": users}
            template_items = (
                f"; the template holds {users[build['template']]:,} of {counts['current_items']:,} "
                f"items ({users[build['template']] / counts['current_items']:.1%})"
                if build.get("template") in users
                else ""
            )
            # the same without the status tables the CLI prints after the run, in both builds
            bare = (build["seconds"] - build["after_run_s"]) / (full_s - run["full"]["after_run_s"])
            print(
                f"  {_who(run):>12} {label}: {build['seconds']:7.1f} s = {share:6.1%} (target <= {target:.0%}: "
                f"{'met' if share <= target else 'MISSED'}; {bare:.1%} without the status summary in both) "
                f"[{_stage_cells(build)}]; items written {counts['items_written_this_run']:,}{template_items}, "
                f"validation rows {counts['validation_rows_this_run']:,}; peak RSS tree "
                f"{build['rss_mb']['tree']:,} MB"
            )
            print(f"  {'':>12}   redid: {_redone(build)}")
    plain = [run for run in runs if not run["image_studies"] and _is_now(run)]
    if len(plain) >= 2:
        small, large = plain[0], plain[-1]
        for kind in ("tree", "main", "pool"):
            a, b = small["full"]["rss_mb"][kind], large["full"]["rss_mb"][kind]
            if "rss_in_run_mb" in small["full"] and "rss_in_run_mb" in large["full"]:
                a_in, b_in = small["full"]["rss_in_run_mb"][kind], large["full"]["rss_in_run_mb"][kind]
                print(f"  peak RSS {kind} during the runs only: {a_in:,} -> {b_in:,} MB = {b_in / max(1, a_in):.2f}x")
            growth = b / max(1, a)
            checked = kind == "tree"
            if checked:
                ok &= growth <= TARGET_MEMORY_GROWTH
            verdict = (
                f" (target <= {TARGET_MEMORY_GROWTH}x: {'met' if growth <= TARGET_MEMORY_GROWTH else 'MISSED'})"
                if checked
                else ""
            )
            print(
                f"  peak RSS {kind} {small['studies']:,} -> {large['studies']:,} studies: {a:,} -> {b:,} MB "
                f"= {growth:.2f}x{verdict}"
            )
    return side_by_side(runs) and ok


def _is_now(run: dict) -> bool:
    """Whether this version built the run (runs saved before `--previous` existed have no version: this one's)."""
    return run.get("version", "now") == "now"


def _who(run: dict) -> str:
    return run["name"] if _is_now(run) else f"{run['name']} ({run['version']})"


def _rates(build: dict) -> tuple[float, float]:
    """Items per second of the QA stage (items written) and of validation (items validated) inside a build."""
    stages = build["stages"]
    qa, validate = stages.get("qa", {}), stages.get("validate", {})
    qa_rate = qa.get("n_done", 0) / qa["seconds"] if qa.get("seconds") else 0.0
    done = validate.get("n_done", 0) + validate.get("n_rejected", 0)
    return qa_rate, done / validate["seconds"] if validate.get("seconds") else 0.0


def side_by_side(runs: list[dict]) -> bool:
    """Each size built by the previous version and by this one: seconds, memory and their ratio; the full build's
    speed-up and the in-build rates against the targets. True when every target checked is met."""
    ok = True
    for run in filter(_is_now, runs):
        before = next((r for r in runs if r["name"] == run["name"] and not _is_now(r)), None)
        if before is None:
            continue
        print(f"\n{run['name']}: {before['version']} -> now (seconds; ratio = previous / now)")
        first = "full build" + (" (first pass)" if "full_repeats" in run else "")
        rows = [(first, before["full"]["seconds"], run["full"]["seconds"])]
        for old, new in zip(before["template_rebuilds"], run["template_rebuilds"], strict=False):
            rows.append((f"{new['template']} edited", old["seconds"], new["seconds"]))
        rows.append(("no-change rebuild", before["no_change"]["seconds"], run["no_change"]["seconds"]))
        for stage in STAGE_ORDER:
            if stage in run["full"]["stages"]:
                old_s = before["full"]["stages"].get(stage, {}).get("seconds", 0.0)
                rows.append((f"  full build: {stage}", old_s, run["full"]["stages"][stage]["seconds"]))
        for kind in ("tree", "main", "pool"):
            rows.append((f"peak RSS {kind} (MB)", before["full"]["rss_mb"][kind], run["full"]["rss_mb"][kind]))
        rows.append(("database (MB)", before["full"]["db_mb"], run["full"]["db_mb"]))
        for label, old, new in rows:
            print(f"  {label:<40} {old:>10,.1f} {new:>10,.1f} {old / new if new else float('nan'):>7.2f}x")
        speedup = before["full"]["seconds"] / run["full"]["seconds"]
        if "full_repeats" in run and "full_repeats" in before:
            speedup = _print_repeats(before["full_repeats"], run["full_repeats"])
        qa_rate, validate_rate = _rates(run["full"])
        checks = [
            (f"full build {speedup:.2f}x the previous version", speedup >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP}x"),
            (f"validation {validate_rate:,.0f} items/s", validate_rate >= TARGET_VALIDATE_RATE, ">= 20,000"),
            (f"QA generation {qa_rate:,.0f} items/s", qa_rate >= TARGET_QA_RATE, ">= 50,000"),
        ]
        for label, met, target in checks:
            ok &= met
            print(f"  {label} (target {target}: {'met' if met else 'MISSED'})")
    return ok


def _print_repeats(before: list[dict], now: list[dict]) -> float:
    """The full builds of both versions (the first pass's first), their medians and, where the counts match, the
    ratio of each repeat's pair; the ratio of the medians (the speed-up checked)."""
    old_s, new_s = (statistics.median(b["seconds"] for b in builds) for builds in (before, now))
    for label, builds in (("previous", before), ("now", now)):
        seconds = ", ".join(f"{b['seconds']:.1f}" for b in builds)
        cpu = ", ".join(f"{sum(b['cpu_s'].values()):.0f}" for b in builds)
        tree = ", ".join(f"{b['tree_mb']:,}" for b in builds)
        print(f"  {label} full builds: {seconds} s (CPU {cpu} s; peak RSS tree {tree} MB)")
    pairs = ""
    if len(before) == len(now):
        ratios = ", ".join(f"{b['seconds'] / n['seconds']:.2f}x" for b, n in zip(before, now, strict=True))
        pairs = f"; per pair, the first pass's first: {ratios}"
    print(
        f"  full build, medians of {len(before)} and {len(now)}: {old_s:.1f} -> {new_s:.1f} s = "
        f"{old_s / new_s:.2f}x{pairs}"
    )
    return old_s / new_s


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count of 1 or more, found {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", default="10000,100000", help="comma-separated sizes of reports-only builds")
    parser.add_argument("--image-studies", type=int, default=2000, help="studies of the run with images (0: none)")
    parser.add_argument("--image-scale", type=float, default=0.5, help="synthetic DICOM size, fraction a side")
    parser.add_argument("--workers", type=int, default=2, help="build --workers (and synth --workers)")
    parser.add_argument(
        "--template",
        default="finding_presence,finding_hedged",
        help="comma-separated built-in templates copied as user templates, each edited in turn",
    )
    parser.add_argument("--baseline-studies", type=int, default=500, help="0: no baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-s", type=float, default=0.2, help="memory sampling period")
    parser.add_argument("--work", type=Path, help="folder for corpora and builds (kept; corpora reused)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument(
        "--build-config",
        type=Path,
        help="a build config file every build also reads "
        "(e.g. another duckdb_memory_limit); the command-line options above win",
    )
    parser.add_argument(
        "--previous",
        default=PREVIOUS,
        help="also build each size with this git revision (a worktree in the work folder), side by side; '' for none",
    )
    parser.add_argument(
        "--repeats",
        type=_at_least_one,
        default=1,
        help="full builds of each report-only size by each version, taking turns (the ratio of their medians)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--reprint",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the report of earlier --json files (their runs in order, the first baseline)",
    )
    parser.add_argument("--child-baseline", nargs=3, metavar=("CORPUS", "DB", "TEMPLATES"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_baseline:
        corpus, db, templates = (Path(p) for p in args.child_baseline)
        print(json.dumps(run_baseline(corpus, db, templates, args.baseline_studies)))
        return 0

    if args.reprint:
        saved = [json.loads(path.read_text()) for path in args.reprint]
        ok = report([run for one in saved for run in one["runs"]], next((s["baseline"] for s in saved), None))
        return 1 if args.check and not ok else 0

    sizes = sorted({int(s) for s in args.studies.split(",") if s.strip()})
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"scale bench: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, workers={args.workers}, "
        f"template {args.template}, work {work}",
        flush=True,
    )
    code_before = checkout_state()
    try:
        versions = [this_version(), *([previous_version(args.previous, work)] if args.previous else [])]
        for version in versions:
            compile_sources(version)
        shapes = [(n, 0) for n in sizes] + ([(args.image_studies, args.image_studies)] if args.image_studies else [])
        # the previous version builds the report-only sizes (the throughput targets' corpus)
        runs = [
            scale_run(n, images, args, work, version)
            for n, images in shapes
            for version in (versions if not images else versions[:1])
        ]
        repeat_full_builds(runs, versions, args, work)
        current = [run for run in runs if run["version"] == "now"]
        baseline = _baseline_child(current[0], args.baseline_studies) if current and args.baseline_studies else None
    finally:
        if not (args.work or args.keep):
            shutil.rmtree(work, ignore_errors=True)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
    if baseline:
        print(
            f"\nbaseline (per-study loop in one process: parse, extract, generate, validate; no database, no pool): "
            f"{baseline['studies']} studies in {baseline['seconds']} s = {baseline['studies_per_s']} studies/s "
            f"({baseline['items_generated']:,} candidate items generated, {baseline['items_validated']:,} "
            f"stored items validated)"
        )
    ok = report(runs, baseline)
    if checkout_state() != code_before:
        ok = False
        print(
            "\nWARNING: this checkout's code changed during the run (a commit or an edit): the 'now' builds may have "
            "run different code, and a rebuild after a change of the checks' rules revalidates every item. Run it "
            "again from a clean clone."
        )
    print(f"\nload at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "baseline": baseline}, indent=1))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
