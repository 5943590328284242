"""IU development set: the rules extractor scored as labels14 against NegBio's gold, and its speed.

Run: CXRVQA_DATA_DIR=../shared/data .venv/bin/python bench/eval_extraction.py [--uncertain-positive]

Interim (issue 3 in progress): it calls the library directly (reports loader, sentences,
extractor) instead of `cxrvqa build` + `cxrvqa export labels14`, which do not exist yet. The
labels14 mapping used here: a study has a label when an observation is present (and, with
--uncertain-positive, uncertain) and its finding or nearest ancestor carries that
chestxray14 code; `normal` when no present finding outside the device/technical/normal
categories. Targets (issue 3): micro-F1 >= 0.90, labels with support >= 20 at F1 >= 0.75,
normal F1 >= 0.90, >= 1,000 reports/s on one core.
"""
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from cxrvqa.reports.loaders import load_reports
from cxrvqa.reports.text import split_sentences
from cxrvqa.extraction.model import Sentence
from cxrvqa.extraction.rules import extract_scene_graph
from cxrvqa.extraction.vocab import vocabulary
from cxrvqa.extraction.evaluation import score_labels14
UNCERTAIN_POSITIVE = "--uncertain-positive" in sys.argv
DATA = os.environ.get("CXRVQA_DATA_DIR")
if not DATA or not Path(DATA, "reports", "iu_dev_reports.csv").is_file():
    sys.exit("set CXRVQA_DATA_DIR to the shared data folder (with reports/iu_dev_reports.csv)")
vocab = vocabulary()
def code_of(fid):
    while fid is not None:
        f = vocab.findings[fid]
        if "chestxray14" in f.get("codes", {}): return f["codes"]["chestxray14"]
        fid = f.get("parent")
    return None
cols = ["Atelectasis","Cardiomegaly","Effusion","Infiltration","Mass","Nodule","Pneumonia","Pneumothorax","Consolidation","Edema","Emphysema","Fibrosis","Pleural_Thickening","Hernia","normal"]
recs = [r for r in load_reports(Path(DATA, 'reports', 'iu_dev_reports.csv'), 'iu')]
t = time.perf_counter(); rows = []
for r in recs:
    ss = split_sentences(r.text)
    g = extract_scene_graph(r.study_id, [Sentence(id=i, section=s.section, text=s.text, start=s.start, end=s.end) for i, s in enumerate(ss)])
    labels = dict.fromkeys(cols, 0); abnormal = False
    for o in g.observations:
        if o.presence == "present" or (o.presence == "uncertain" and UNCERTAIN_POSITIVE):
            c = code_of(o.finding)
            if c: labels[c] = 1
            if o.category not in ("device", "technical", "normal"): abnormal = True
    labels["normal"] = 0 if abnormal else 1
    rows.append([f"CXR{r.study_id}"] + [labels[c] for c in cols])
dt = time.perf_counter() - t
pred_path = Path(tempfile.mkdtemp()) / 'pred_labels14.csv'
with open(pred_path, 'w', newline='') as h:
    w = csv.writer(h); w.writerow(["filename"] + cols); w.writerows(rows)
rep = score_labels14(pred_path, Path(DATA, 'reports', 'iu_dev_labels14.csv'))
print(f"{len(recs)} reports, {len(recs)/dt:.0f} reports/s on one core (sentences + extraction); "
      f"uncertain counted as {'positive' if UNCERTAIN_POSITIVE else 'negative'}")
for s in rep.labels + [rep.normal, rep.micro]:
    f1 = "n/a" if s.f1 is None else f"{s.f1:.3f}"
    precision = "n/a" if s.precision is None else f"{s.precision:.3f}"
    recall = "n/a" if s.recall is None else f"{s.recall:.3f}"
    print(f"{s.label:20} support {s.support:4}  P {precision}  R {recall}  F1 {f1}")
print(f"macro F1 {rep.macro_f1:.3f}; targets: micro >= 0.90, normal >= 0.90 -> "
      f"{'PASS' if rep.micro.f1 >= 0.9 and rep.normal.f1 >= 0.9 else 'NOT MET'}")
