"""The demo's driver (run_demo.sh runs it): four OFA tasks trained and scored with the stock fairseq CLIs
on toy data, then a terminal table and an HTML report.

Stages: write the toy world; for captioning, VQA, grounding (refcoco) and text-to-image generation in
turn, train from scratch with run_scripts/<task>/train_<task>_toy.sh (progress: the loss every
PRINT_EVERY updates) and score the test rows with evaluate_<task>_toy.sh, which also prints the task's
trivial baseline; then OUT/demo.html (ofa_plugin.report). The first three share the toy world in OUT/data;
image generation's train script writes its own data (single-shape images, a toy VQGAN, code TSVs) into
OUT/data_image_gen, and its evaluate script the generated PNGs into OUT/image_gen/results.
Each CLI's full output stays in OUT/<task>/{train,generate}.log.
Environment: OUT (default outputs/demo), CAPTION_UPDATES, VQA_UPDATES, REFCOCO_UPDATES, IMAGE_GEN_UPDATES
(training lengths), NUM_TRAIN (training rows per task; image generation: its script's 4000 unless set).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

# Importing the plugin imports fairseq and torch, which warn about optional packages and deprecations;
# the demo's own output stays readable (the CLIs' logs keep everything).
warnings.filterwarnings("ignore", category=FutureWarning)

from ofa_plugin.report.curves import line_chart_svg
from ofa_plugin.report.examples import (caption_examples, generated_images, grounding_examples, image_gen_examples,
                                        vqa_examples)
from ofa_plugin.report.html_page import (BOX_LEGEND, CHECK_LEGEND, Section, caption_card, grounding_card,
                                         image_gen_card, render_page, vqa_card)
from ofa_plugin.report.metrics_table import MetricRow, text_table
from ofa_plugin.report.training_log import loss_point, read_training_log

REPO = Path(__file__).resolve().parents[2]
NUM_TEST = 200
PRINT_EVERY = 100  # updates between progress lines
SEED = 1


def _find(pattern: str, text: str, log: Path) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        sys.exit(f"no line matching {pattern!r} in {log}")
    return match


@dataclass(frozen=True)
class Task:
    """One demo task: its run scripts, training length, and how its scores are read from the output."""

    name: str  # run_scripts/<name>/{train,evaluate}_<name>_toy.sh
    title: str
    updates_env: str
    default_updates: int
    test_rows: str  # what the test rows are, for the progress line
    metrics: Callable[[str, Path], list[MetricRow]]  # evaluation output, its log -> [MetricRow]
    own_data: bool = False  # its train script writes its own data (into OUT/data_<name>), not the toy world's
    images: bool = False  # its evaluate script writes images into the folder given as third argument

    @property
    def updates(self) -> int:
        return int(os.environ.get(self.updates_env, self.default_updates))

    def data(self, out: Path) -> Path:
        """The task's data folder in the demo's output folder."""
        return out / (f"data_{self.name}" if self.own_data else "data")


def caption_metrics(text: str, log: Path) -> list[MetricRow]:
    model = _find(r"^Generate test with beam=5: CIDEr ([0-9.]+) \| BLEU-4 ([0-9.]+)", text, log)
    base = _find(r'^Most-frequent-caption baseline \("([^"]*)".*: CIDEr ([0-9.]+) \| BLEU-4 ([0-9.]+)', text, log)
    name = f'the most frequent training caption ("{base[1]}") for every image'
    return [MetricRow("captioning", "CIDEr", float(model[1]), float(base[2]), name),
            MetricRow("captioning", "BLEU-4", float(model[2]), float(base[3]), name)]


def vqa_metrics(text: str, log: Path) -> list[MetricRow]:
    model = _find(r"^Generate test.*: VQA accuracy ([0-9.]+)", text, log)
    base = _find(r"^Most-frequent-answer-per-question baseline \(no image\): VQA accuracy ([0-9.]+)", text, log)
    return [MetricRow("VQA", "VQA accuracy", float(model[1]), float(base[1]),
                      "the most frequent training answer of each question, without the image")]


def refcoco_metrics(text: str, log: Path) -> list[MetricRow]:
    model = _find(r"^Generate test.*: Acc@0\.5 ([0-9.]+)", text, log)
    base = _find(r"^Centred-box baseline: Acc@0\.5 ([0-9.]+)", text, log)
    return [MetricRow("grounding", "Acc@0.5", float(model[1]), float(base[1]),
                      "a box of the mean training size at the centre of every image")]


def image_gen_metrics(text: str, log: Path) -> list[MetricRow]:
    check = r"toy check on \d+ images: colour ([0-9.]+), shape [0-9.]+, both ([0-9.]+)"
    model = _find(rf"^Generate test.*: {check}", text, log)
    base = _find(rf"^Random-codes baseline: {check}", text, log)
    name = "uniformly random image codes decoded by the same toy VQGAN"
    return [MetricRow("image generation", "object colour", float(model[1]), float(base[1]), name),
            MetricRow("image generation", "colour and shape", float(model[2]), float(base[2]), name)]


IMAGE_GEN = Task("image_gen", "Text-to-image generation", "IMAGE_GEN_UPDATES", 300,
                 "test captions (4 sampled images each)", image_gen_metrics, own_data=True, images=True)
TASKS = (
    Task("caption", "Image captioning", "CAPTION_UPDATES", 900, f"{NUM_TEST} test images", caption_metrics),
    Task("vqa", "Visual question answering", "VQA_UPDATES", 300, f"{NUM_TEST} test questions", vqa_metrics),
    Task("refcoco", "Visual grounding (refcoco)", "REFCOCO_UPDATES", 400, f"{NUM_TEST} test expressions",
         refcoco_metrics),
    IMAGE_GEN,
)


def _env() -> dict:
    """The repository's venv first on PATH, so the scripts find its fairseq CLIs and python."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _fail(what: str, log: Path) -> NoReturn:
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    sys.exit(f"{what} failed; see {log}\n{tail}")


def run_logged(what: str, args: list, log: Path, env: dict) -> str:
    """Run a command with its output in `log`; exit with the log's tail if it fails."""
    with log.open("w") as handle:
        code = subprocess.run([str(a) for a in args], env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        _fail(what, log)
    return log.read_text(errors="replace")


def train(task: Task, data: Path, out: Path, env: dict) -> None:
    """Train with the task's toy recipe, printing the loss every PRINT_EVERY updates as it goes."""
    log = out / "train.log"
    script = REPO / "run_scripts" / task.name / f"train_{task.name}_toy.sh"
    with log.open("w") as handle, subprocess.Popen(
            ["bash", str(script), str(data), str(out / "checkpoints")], env={**env, "MAX_UPDATE": str(task.updates)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        first = True
        for line in process.stdout:
            handle.write(line)
            point = loss_point(line)
            if point and (first or point[0] % PRINT_EVERY == 0 or point[0] == task.updates):
                print(f"  update {point[0]:5d}: loss {point[1]:.3f}", flush=True)
                first = False
            elif "done training in" in line:
                print("  " + line.rsplit("| ", 1)[-1].strip(), flush=True)
    if process.returncode != 0:
        _fail("fairseq-train", log)


def evaluate(task: Task, data: Path, out: Path, env: dict) -> list[MetricRow]:
    """Score the test rows (predictions to OUT/<task>/results/test_predict.json, generated images there
    too) and read the metrics."""
    log, results = out / "generate.log", out / "results"
    script = REPO / "run_scripts" / task.name / f"evaluate_{task.name}_toy.sh"
    checkpoint = out / "checkpoints" / "checkpoint_last.pt"
    args = ["bash", script, data, checkpoint, *([results] if task.images else []), "--results-path", results]
    text = run_logged("fairseq-generate", args, log, env)
    # With --results-path fairseq-generate writes its per-sentence lines and the metric line there.
    return task.metrics(text + (results / "generate-test.txt").read_text(), log)


def baseline_notes(rows: list[MetricRow]) -> list[str]:
    """What each task's trivial baseline predicts, once per task."""
    return list(dict.fromkeys(f"{row.task}: {row.baseline_name}" for row in rows))


def write_report(out: Path, rows: list[MetricRow], seconds: float) -> Path:
    """OUT/demo.html: the metrics, the training curves, the first test images of each task and the
    images generated for the first test captions."""
    charts = [line_chart_svg(read_training_log(out / task.name / "train.log").points(), task.title,
                             "update", "loss (nats/token)") for task in TASKS]
    data, image_data, images = out / "data", IMAGE_GEN.data(out), out / IMAGE_GEN.name / "results"
    predictions = {task.name: out / task.name / "results" / "test_predict.json" for task in TASKS}
    sections = [
        Section("Captioning", "The model's caption (beam 5), then the references; green: equal to a reference.",
                [caption_card(e) for e in caption_examples(data / "caption_test.tsv", predictions["caption"])]),
        Section("VQA", "The question, the model's answer (best of all candidate answers) with its VQA score, "
                       "and the annotated answers with their confidences.",
                [vqa_card(e) for e in vqa_examples(data / "vqa_test.tsv", predictions["vqa"])]),
        Section("Grounding", f"{BOX_LEGEND} A hit needs IoU >= 0.5 (Acc@0.5 counts the hits).",
                [grounding_card(e) for e in grounding_examples(data / "refcoco_test.tsv", predictions["refcoco"])]),
        Section("Image generation", "A test caption and the images the model sampled for it (top-k sampling of "
                                    f"the image codes, decoded by the toy VQGAN). {CHECK_LEGEND}",
                [image_gen_card(e) for e in image_gen_examples(image_data / "coco_vqgan_test.tsv", images)]),
    ]
    baselines = "Trivial baselines: " + "; ".join(baseline_notes(rows)) + "."
    summary = (f"ofa_nano models trained from scratch with fairseq-train on the toy world (random scenes of coloured "
               f"shapes), scored with fairseq-generate on {NUM_TEST} held-out rows per task (text-to-image: images "
               f"of one coloured shape, {len(generated_images(images))} test captions); "
               + ", ".join(f"{t.name} {t.updates} updates" for t in TASKS) + f"; whole run {seconds / 60:.1f} min.")
    page = out / "demo.html"
    page.write_text(render_page("OFA plugin demo: captioning, VQA, grounding, text-to-image", summary, rows, charts,
                                sections, baselines))
    return page


def write_world(data: Path, num_train: int, env: dict) -> None:
    """The toy world's TSVs and vocabulary for the demo's tasks, fresh for every run."""
    run_logged("toy world", [sys.executable, "-m", "ofa_plugin.data.toyworld", "--out", data, "--seed", SEED,
                             "--num-train", num_train, "--num-valid", 50, "--num-test", NUM_TEST,
                             "--tasks", *(task.name for task in TASKS if not task.own_data)],
               data.parent / "toyworld.log", env)


def run_task(task: Task, data: Path, out: Path, env: dict) -> list[MetricRow]:
    """Train and evaluate one task in `out`, printing progress and its scores."""
    out.mkdir()
    train(task, data, out, env)
    print(f"  fairseq-generate on the {task.test_rows} (log: {out / 'generate.log'})", flush=True)
    started = time.monotonic()
    rows = evaluate(task, data, out, env)
    for row in rows:
        print(f"  {row.metric}: model {row.model:.3f}, trivial baseline {row.baseline:.3f}", flush=True)
    print(f"  evaluated in {time.monotonic() - started:.0f} s", flush=True)
    return rows


def main() -> None:
    # Here, not at import: tests import this module. Importing fairseq sets the root logger to DEBUG, which
    # would print e.g. PIL's notes on every PNG read for the report.
    for name in ("", "fairseq"):
        logging.getLogger(name).setLevel(logging.WARNING)
    start = time.monotonic()
    out = Path(os.environ.get("OUT", REPO / "outputs" / "demo")).resolve()
    data, env, num_train = out / "data", _env(), int(os.environ.get("NUM_TRAIN", 10000))
    for stale in [*(task.data(out) for task in TASKS), *(out / task.name for task in TASKS)]:
        shutil.rmtree(stale, ignore_errors=True)
    (out / "demo.html").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    stages = 2 + len(TASKS)

    print(f"== [1/{stages}] toy world -> {data} ({num_train} training and {NUM_TEST} test rows per task)", flush=True)
    write_world(data, num_train, env)
    rows = []
    for number, task in enumerate(TASKS, start=2):
        print(f"== [{number}/{stages}] {task.title}: fairseq-train, {task.updates} updates "
              f"(log: {out / task.name / 'train.log'})", flush=True)
        rows += run_task(task, task.data(out), out / task.name, env)

    print(f"== [{stages}/{stages}] report", flush=True)
    page = write_report(out, rows, time.monotonic() - start)
    print("\n" + text_table(rows) + "\n")
    print("Trivial baselines:\n" + "\n".join(f"  {note}" for note in baseline_notes(rows)))
    print(f"\nReport with pictures and training curves: {page}")
    seconds = time.monotonic() - start
    print(f"Done in {seconds / 60:.1f} min ({seconds:.0f} s).")


if __name__ == "__main__":
    main()
