"""The dataset converters (ofa_plugin/convert): tiny inputs in each public format are converted, and the
TSVs are read back through our tasks' datasets, whose decoded texts, boxes, answers with confidences,
labels and image pixels must equal the inputs; bad inputs give errors naming file and record."""
import base64
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ofa_plugin  # noqa: F401  (registers the plugin's tasks)
from ofa_plugin.convert import coco_captions, imagenet, refcoco, snli_ve, vqav2
from ofa_plugin.convert.common import ConversionError
from ofa_plugin.data.answers import load_ans2label
from ofa_plugin.data.closed_set import REF_LABELS
from ofa_plugin.data.collate import BATCH_EXTRAS
from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask
from ofa_plugin.tasks.image_classify import ImageClassifyConfig, ImageClassifyTask
from ofa_plugin.tasks.refcoco import RefcocoConfig, RefcocoTask
from ofa_plugin.tasks.snli_ve import SnliVeConfig, SnliVeTask
from ofa_plugin.tasks.vqa_gen import VqaGenConfig, VqaGenTask

from conftest import BPE_DIR

SIZE = 16  # images are SIZE x SIZE PNGs and the tasks resize to SIZE: the pixels come through unchanged
REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, seed: int) -> np.ndarray:
    """A random RGB PNG (lossless) at `path`; returns its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return pixels


def assert_pixels(patch_image: torch.Tensor, pixels: np.ndarray) -> None:
    """`patch_image` is `pixels` normalised with mean = std = 0.5 (no resize: same size)."""
    expected = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(patch_image, expected, atol=1e-6, rtol=0)


def dataset(task_cls, config_cls, tsv: Path, split: str, **options):
    task = task_cls.setup_task(config_cls(data=str(tsv), bpe_dir=str(BPE_DIR), patch_image_size=SIZE, **options))
    task.load_dataset(split)
    return task, task.dataset(split)


def decoded(task, tokens: torch.Tensor) -> str:
    return task.target_text(tokens[tokens != task.tgt_dict.bos()])


# ------------------------------------------------------------------------------------------ captions


@pytest.fixture
def karpathy(tmp_path):
    """A Karpathy split file over 4 images (train, restval, val, test) and their pixels."""
    images, pixels = [], {}
    for number, split in enumerate(("train", "restval", "val", "test")):
        folder = "train2014" if split in ("train", "restval") else "val2014"
        name = f"COCO_{folder}_{number:012d}.png"
        pixels[number] = write_image(tmp_path / "coco" / folder / name, number)
        sentences = [{"raw": f"A Dog number {number},\tin the\nPark.", "sentid": 10 * number},
                     {"raw": f"  a cat {number} sits ", "sentid": 10 * number + 1}]
        images.append({"split": split, "filepath": folder, "filename": name, "cocoid": number,
                       "sentences": sentences})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path, pixels


def test_coco_captions_karpathy(karpathy, tmp_path, caplog):
    caplog.set_level("INFO", logger="ofa_plugin.convert")
    annotations, pixels = karpathy
    out = tmp_path / "out"
    written = coco_captions.main(["--annotations", str(annotations), "--images", str(tmp_path / "coco"),
                                  "--out-dir", str(out), "--log-every", "1"])
    assert sorted(p.name for p in written) == ["caption_stage1_train.tsv", "caption_stage2_train.tsv",
                                               "caption_test.tsv", "caption_val.tsv"]
    assert "caption_stage1_train.tsv: 3/4 rows" in caplog.text  # progress, here every row
    stage1 = (out / "caption_stage1_train.tsv").read_text().splitlines()
    assert [row.split("\t")[:4] for row in stage1] == [
        ["0", "0", "a dog number 0, in the park.", ""], ["1", "0", "a cat 0 sits", ""],
        ["10", "1", "a dog number 1, in the park.", ""], ["11", "1", "a cat 1 sits", ""]]
    image_bytes = (tmp_path / "coco/train2014/COCO_train2014_000000000000.png").read_bytes()
    assert base64.b64decode(stage1[0].split("\t")[4]) == image_bytes  # the file's bytes, not re-encoded

    task, data = dataset(CaptionTask, CaptionConfig, out / "caption_stage1_train.tsv", "train", selected_cols="0,4,2")
    assert [decoded(task, data[i]["target"]) for i in range(4)] == [
        " a dog number 0 in the park", " a cat 0 sits", " a dog number 1 in the park", " a cat 1 sits"]
    assert [data[i]["uniq_id"] for i in range(4)] == ["0", "1", "10", "11"]
    assert_pixels(data[2]["patch_image"], pixels[1])

    task, data = dataset(CaptionTask, CaptionConfig, out / "caption_test.tsv", "test", selected_cols="1,4,2")
    assert len(data) == 1 and data[0]["uniq_id"] == "3"
    assert decoded(task, data[0]["target"]) == " a dog number 3 in the park&&a cat 3 sits"
    assert_pixels(data[0]["patch_image"], pixels[3])
    stage2 = (out / "caption_stage2_train.tsv").read_text().splitlines()
    assert [row.split("\t")[:3] for row in stage2] == [
        ["0", "0", "a dog number 0, in the park.&&a cat 0 sits"],
        ["1", "1", "a dog number 1, in the park.&&a cat 1 sits"]]


def test_coco_captions_json_with_image_paths(tmp_path):
    pixels = write_image(tmp_path / "val2014" / "a.png", 7)
    write_image(tmp_path / "val2014" / "unused.png", 8)
    data = {"images": [{"id": 5, "file_name": "a.png"}, {"id": 6, "file_name": "unused.png"}],
            "annotations": [{"id": 51, "image_id": 5, "caption": "Two birds."},
                            {"id": 52, "image_id": 5, "caption": "birds on a wire"}]}
    (tmp_path / "captions_val2014.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    coco_captions.main(["--annotations", str(tmp_path / "captions_val2014.json"), "--images",
                        str(tmp_path / "val2014"), "--split", "val", "--out-dir", str(out), "--image-column", "path"])
    assert (out / "caption_val.tsv").read_text() == "5\t5\ttwo birds.&&birds on a wire\t\t../val2014/a.png\n"
    task, data = dataset(CaptionTask, CaptionConfig, out / "caption_val.tsv", "valid", selected_cols="1,4,2")
    assert decoded(task, data[0]["target"]) == " two birds&&birds on a wire"
    assert_pixels(data[0]["patch_image"], pixels)
    with pytest.raises(ConversionError, match="name its split with --split"):
        coco_captions.main(["--annotations", str(tmp_path / "captions_val2014.json"), "--images", str(tmp_path),
                            "--out-dir", str(out)])


def test_coco_captions_errors(karpathy, tmp_path):
    annotations, _ = karpathy
    args = ["--annotations", str(annotations), "--images", str(tmp_path / "coco"), "--out-dir", str(tmp_path / "o")]
    (tmp_path / "coco/train2014/COCO_train2014_000000000001.png").unlink()
    with pytest.raises(ConversionError) as err:
        coco_captions.main(args)
    assert str(err.value) == (f"{annotations}: images[1] (image id 1): image file "
                              f"{tmp_path}/coco/train2014/COCO_train2014_000000000001.png not found")
    assert not list((tmp_path / "o").iterdir())  # neither a TSV nor a partial one is left
    data = json.loads(annotations.read_text())
    del data["images"][2]["sentences"][1]["raw"]
    annotations.write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"images\[2\] \(image id 2\) sentences\[1\]: malformed record, "
                                              r"missing 'raw'"):
        coco_captions.main(args)


# ------------------------------------------------------------------------------------------ VQA v2


def _vqa_inputs(tmp_path: Path) -> dict:
    """Questions, annotations, objects and images of 5 questions about 2 images (the last one's answers
    all normalise to nothing: it is dropped)."""
    pixels = {image_id: write_image(tmp_path / "train2014" / f"COCO_train2014_{image_id:012d}.jpg", image_id)
              for image_id in (42, 7)}
    questions = [(1, 42, "How many\tdogs?"), (2, 42, "What color is it?"), (3, 7, "What is purple?"),
                 (4, 7, "How many cats?"), (5, 7, "Which?")]
    answers = {
        1: ["two", "2", "Two", "2", "3", "three", "many", "a few", "few", "A few."],
        2: ["red", "red", "blue", "blue", "blue"],  # 5 answers: leave-one-out over 5
        3: ["purple"] * 9 + ["the"],  # "the" counts as a human answer but is no answer
        4: ["2"] * 10,
        5: ["the"] * 5 + ["?"] * 5,
    }
    multiple_choice = {1: "2", 2: "blue", 3: "purple", 4: "two", 5: "the"}
    q = {"data_subtype": "train2014", "questions": [{"question_id": i, "image_id": im, "question": t}
                                                     for i, im, t in questions]}
    a = {"annotations": [{"question_id": i, "multiple_choice_answer": multiple_choice[i],
                          "answers": [{"answer": ans, "answer_id": k + 1} for k, ans in enumerate(answers[i])]}
                         for i in answers]}
    paths = {"questions": tmp_path / "q.json", "annotations": tmp_path / "a.json", "objects": tmp_path / "obj.json"}
    paths["questions"].write_text(json.dumps(q))
    paths["annotations"].write_text(json.dumps(a))
    paths["objects"].write_text(json.dumps({"42": ["dog", "frisbee"]}))
    return {"paths": paths, "pixels": pixels}


def _vqa_args(inputs: dict, tmp_path: Path, out: str) -> list:
    paths = inputs["paths"]
    return ["--questions", str(paths["questions"]), "--annotations", str(paths["annotations"]),
            "--images", str(tmp_path / "train2014"), "--out", str(tmp_path / out)]


def test_vqav2_answers_confidences_objects_and_pixels(tmp_path):
    inputs = _vqa_inputs(tmp_path)
    tsv = vqav2.main(_vqa_args(inputs, tmp_path, "vqa.tsv") + ["--objects", str(inputs["paths"]["objects"])])
    rows = [row.split("\t") for row in tsv.read_text().splitlines()]
    # q1 (10 answers): "2" x4 -> 1.0, "few" x3 -> 0.9, "3" x2 -> 0.6, "many" x1 -> 0.3;
    # q2 (5 answers, leave-one-out): blue x3 -> (3 * 2/3 + 2 * 1) / 5 = 0.8, red x2 -> (2 * 1/3 + 3 * 2/3) / 5
    assert [row[:5] for row in rows] == [
        ["1", "42", "How many dogs?", "1.0|!+2&&0.9|!+few&&0.6|!+3&&0.3|!+many", "dog&&frisbee"],
        ["2", "42", "What color is it?", "0.8|!+blue&&0.5333|!+red", "dog&&frisbee"],
        ["3", "7", "What is purple?", "1.0|!+purple", ""],
        ["4", "7", "How many cats?", "1.0|!+2", ""]]
    task, data = dataset(VqaGenTask, VqaGenConfig, tsv, "valid", selected_cols="0,5,2,3,4", prompt_type="prev_output",
                         ans2label_dict=json.dumps({"2": 0, "blue": 1, "purple": 2}))
    extras = [data[i][BATCH_EXTRAS] for i in range(4)]
    assert extras[0]["ref_dict"] == {"2": 1.0, "few": 0.9, "3": 0.6, "many": 0.3}
    assert extras[1]["ref_dict"] == {"blue": 0.8, "red": 0.5333}
    assert [e["question_id"] for e in extras] == [1, 2, 3, 4]
    assert [e["conf"].item() for e in extras] == pytest.approx([1.0, 0.8, 1.0, 1.0])
    assert decoded(task, data[0]["source"]) == " how many dogs?"
    assert_pixels(data[0]["patch_image"], inputs["pixels"][42])
    assert_pixels(data[2]["patch_image"], inputs["pixels"][7])


def test_vqav2_ans2label_and_candidates_only(tmp_path):
    inputs = _vqa_inputs(tmp_path)
    ans2label = tmp_path / "ans2label.pkl"
    tsv = vqav2.main(_vqa_args(inputs, tmp_path, "vqa.tsv") + [
        "--ans2label-out", str(ans2label), "--min-answer-count", "2", "--candidates-only"])
    assert load_ans2label(str(ans2label), "{}") == {"2": 0}  # "2" and "two" are both "2"
    rows = [row.split("\t") for row in tsv.read_text().splitlines()]
    assert [row[:4] for row in rows] == [["1", "42", "How many dogs?", "1.0|!+2"],
                                         ["4", "7", "How many cats?", "1.0|!+2"]]
    again = vqav2.main(_vqa_args(inputs, tmp_path, "vqa2.tsv") + ["--candidates", str(ans2label), "--candidates-only"])
    assert again.read_text() == tsv.read_text()
    with pytest.raises(ConversionError, match="no answer is given to 3 or more questions"):
        vqav2.main(_vqa_args(inputs, tmp_path, "vqa3.tsv") + ["--ans2label-out", str(ans2label),
                                                               "--min-answer-count", "3"])


def test_vqav2_errors(tmp_path):
    inputs = _vqa_inputs(tmp_path)
    args = _vqa_args(inputs, tmp_path, "vqa.tsv")
    (tmp_path / "train2014" / "COCO_train2014_000000000007.jpg").write_bytes(b"not an image")
    with pytest.raises(ConversionError, match=r"q.json: questions\[2\] \(question id 3\): image file .*"
                                              r"COCO_train2014_000000000007.jpg is not a readable image"):
        vqav2.main(args)
    annotations = json.loads(inputs["paths"]["annotations"].read_text())
    del annotations["annotations"][1]["answers"]
    inputs["paths"]["annotations"].write_text(json.dumps(annotations))
    with pytest.raises(ConversionError,
                       match=r"a.json: annotation of question id 2: malformed record, missing 'answers'"):
        vqav2.main(args)
    del annotations["annotations"][1]
    inputs["paths"]["annotations"].write_text(json.dumps(annotations))
    with pytest.raises(ConversionError, match=r"questions\[1\] \(question id 2\): no annotation in .*a.json"):
        vqav2.main(args)
    with pytest.raises(ConversionError, match="must use only {subtype} and {image_id}"):
        vqav2.main(args + ["--image-pattern", "{image}.jpg"])


# ------------------------------------------------------------------------------------------ RefCOCO


def _refcoco_inputs(tmp_path: Path) -> dict:
    pixels = {i: write_image(tmp_path / "train2014" / f"COCO_train2014_{i:012d}.jpg", i) for i in (1, 2)}
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg"},
                            {"id": 2, "file_name": "COCO_train2014_000000000002.jpg"}],
                 "annotations": [{"id": 100, "image_id": 1, "bbox": [1.5, 2.25, 10.1, 8.5]},
                                 {"id": 200, "image_id": 2, "bbox": [0, 0, 16, 16]}]}
    refs = [
        {"ref_id": 11, "ann_id": 100, "image_id": 1, "split": "train",
         "sentences": [{"sent": "man in red", "raw": "Man in red.", "sent_id": 5},
                       {"raw": "the  left\tman", "sent_id": 6}]},
        {"ref_id": 12, "ann_id": 200, "image_id": 2, "split": "testA",
         "sentences": [{"sent": "whole picture", "sent_id": 7}]},
    ]
    paths = {"refs": tmp_path / "refs(unc).p", "instances": tmp_path / "instances.json"}
    paths["refs"].write_bytes(pickle.dumps(refs))
    paths["instances"].write_text(json.dumps(instances))
    return {"paths": paths, "pixels": pixels, "refs": refs}


def _refcoco_args(inputs: dict, tmp_path: Path) -> list:
    return ["--refs", str(inputs["paths"]["refs"]), "--instances", str(inputs["paths"]["instances"]),
            "--images", str(tmp_path / "train2014"), "--out-dir", str(tmp_path / "out")]


def test_refcoco_rows_boxes_and_pixels(tmp_path):
    inputs = _refcoco_inputs(tmp_path)
    written = refcoco.main(_refcoco_args(inputs, tmp_path))
    assert [p.name for p in written] == ["refcoco_testA.tsv", "refcoco_train.tsv"]
    train = [row.split("\t")[:4] for row in (tmp_path / "out/refcoco_train.tsv").read_text().splitlines()]
    assert train == [["11_5", "1", "man in red", "1.5,2.25,11.6,10.75"],
                     ["11_6", "1", "the left man", "1.5,2.25,11.6,10.75"]]
    task, data = dataset(RefcocoTask, RefcocoConfig, tmp_path / "out/refcoco_train.tsv", "valid",
                         selected_cols="0,4,2,3")
    assert [data[i]["uniq_id"] for i in range(2)] == ["11_5", "11_6"]
    assert decoded(task, data[1]["source"]) == ' which region does the text " the left man " describe?'
    torch.testing.assert_close(data[0][BATCH_EXTRAS]["region_coords"], torch.tensor([1.5, 2.25, 11.6, 10.75]))
    assert_pixels(data[0]["patch_image"], inputs["pixels"][1])
    _, data = dataset(RefcocoTask, RefcocoConfig, tmp_path / "out/refcoco_testA.tsv", "test", selected_cols="0,4,2,3")
    torch.testing.assert_close(data[0][BATCH_EXTRAS]["region_coords"], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    assert_pixels(data[0]["patch_image"], inputs["pixels"][2])


def test_refcoco_reads_python2_pickles(tmp_path):
    """The refer API's refs files are Python 2 pickles; their byte strings are UTF-8 text."""
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02]q\x00}q\x01U\x04sentq\x02U\x05caf\xc3\xa9q\x03sa.")  # py2: [{'sent': 'caf\xc3\xa9'}]
    assert refcoco.load_refs(path) == [{"sent": "caf\u00e9"}]


def test_refcoco_errors(tmp_path):
    inputs = _refcoco_inputs(tmp_path)
    refs_path = inputs["paths"]["refs"]
    with pytest.raises(ConversionError, match=r"no refs of split\(s\) \['val'\]"):
        refcoco.main(_refcoco_args(inputs, tmp_path) + ["--splits", "val"])
    inputs["refs"][1]["ann_id"] = 300
    refs_path.write_bytes(pickle.dumps(inputs["refs"]))
    with pytest.raises(ConversionError, match=r"refs\[1\] \(ref id 12\): annotation id 300 is not in .*instances.json"):
        refcoco.main(_refcoco_args(inputs, tmp_path))
    refs_path.write_bytes(b"garbage")
    with pytest.raises(ConversionError, match="not a refs pickle"):
        refcoco.main(_refcoco_args(inputs, tmp_path))


# ------------------------------------------------------------------------------------------ SNLI-VE


def _snli_inputs(tmp_path: Path) -> tuple[Path, dict]:
    pixels = {i: write_image(tmp_path / "flickr30k_images" / f"{i}.jpg", i) for i in (1000, 2000)}
    lines = [{"Flickr30K_ID": "1000", "pairID": "1000.jpg#0r1e", "sentence1": "Two dogs run.",
              "sentence2": "Animals are outside.", "gold_label": "entailment"},
             {"Flickr30K_ID": "1000", "pairID": "1000.jpg#0r1c", "sentence1": "Two dogs run.",
              "sentence2": "Cats\tsleep.", "gold_label": "contradiction"},
             {"Flickr30K_ID": "2000", "pairID": "2000.jpg#3r1n", "sentence1": "A man sings.",
              "sentence2": "He is famous.", "gold_label": "neutral"}]
    path = tmp_path / "snli_ve_dev.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, pixels


def test_snli_ve_rows_labels_and_pixels(tmp_path):
    jsonl, pixels = _snli_inputs(tmp_path)
    tsv = snli_ve.main(["--jsonl", str(jsonl), "--images", str(tmp_path / "flickr30k_images"),
                        "--out", str(tmp_path / "snli_ve_dev.tsv")])
    rows = [row.split("\t") for row in tsv.read_text().splitlines()]
    assert [row[:2] + row[3:] for row in rows] == [
        ["1000.jpg#0r1e", "1000", "Animals are outside.", "Two dogs run.", "entailment"],
        ["1000.jpg#0r1c", "1000", "Cats sleep.", "Two dogs run.", "contradiction"],
        ["2000.jpg#3r1n", "2000", "He is famous.", "A man sings.", "neutral"]]
    task, data = dataset(SnliVeTask, SnliVeConfig, tsv, "valid", selected_cols="0,2,3,4,5",
                         prompt_type="prev_output", add_caption=True)
    assert [data[i][BATCH_EXTRAS][REF_LABELS] for i in range(3)] == ["yes", "no", "maybe"]
    assert [data[i]["uniq_id"] for i in range(3)] == ["1000.jpg#0r1e", "1000.jpg#0r1c", "2000.jpg#3r1n"]
    assert decoded(task, data[1]["source"]) == ' can image and text1 " two dogs run. " imply text2 " cats sleep. "?'
    assert_pixels(data[1]["patch_image"], pixels[1000])
    assert_pixels(data[2]["patch_image"], pixels[2000])


@pytest.mark.parametrize("line, message", [
    ('{"Flickr30K_ID": "1000", "pairID": "p", "sentence1": "a", "sentence2": "b", "gold_label": "-"}',
     "line 2: gold_label must be one of contradiction, entailment, neutral, got '-'"),
    ('{"Flickr30K_ID": "1000", "pairID": "p", "sentence1": "a", "gold_label": "neutral"}',
     "line 2: malformed record, missing 'sentence2'"),
    ('{"Flickr30K_ID": "1000",', "line 2: not a JSON object"),
])
def test_snli_ve_malformed_lines(tmp_path, line, message):
    jsonl, _ = _snli_inputs(tmp_path)
    first, *_ = jsonl.read_text().splitlines()
    jsonl.write_text(f"{first}\n{line}\n")
    with pytest.raises(ConversionError, match=f"snli_ve_dev.jsonl: {message}".replace("(", r"\(").replace(")", r"\)")):
        snli_ve.main(["--jsonl", str(jsonl), "--images", str(tmp_path / "flickr30k_images"), "--out",
                      str(tmp_path / "x.tsv")])


@pytest.mark.slow  # one CLI process: importing the plugin (fairseq) takes 6-30 s
def test_cli_reports_a_missing_image_in_one_line(tmp_path):
    """`python -m` entry point: exit status 1 and one 'error:' line naming the record and the image."""
    jsonl, _ = _snli_inputs(tmp_path)
    (tmp_path / "flickr30k_images" / "2000.jpg").unlink()
    result = subprocess.run([sys.executable, "-m", "ofa_plugin.convert.snli_ve", "--jsonl", str(jsonl), "--images",
                             str(tmp_path / "flickr30k_images"), "--out", str(tmp_path / "out.tsv"),
                             "--image-column", "path"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert f"error: {jsonl}: line 3: image file {tmp_path}/flickr30k_images/2000.jpg not found\n" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.tsv").exists() and not (tmp_path / "out.tsv.partial").exists()


# ------------------------------------------------------------------------------------------ ImageNet


def _imagenet_inputs(tmp_path: Path) -> dict:
    pixels = {}
    for wnid, count in (("n02", 1), ("n01", 2)):
        for k in range(count):
            pixels[(wnid, k)] = write_image(tmp_path / "train" / wnid / f"{wnid}_{k}.JPEG", 10 * k + len(pixels))
    (tmp_path / "train" / "n01" / "readme.txt").write_text("not an image")
    names = tmp_path / "LOC_synset_mapping.txt"
    names.write_text("n01 goldfish, Carassius auratus\nn02\tgreat white shark, white shark\nn03 tench\n")
    return {"pixels": pixels, "names": names}


def test_imagenet_rows_labels_and_pixels(tmp_path):
    inputs = _imagenet_inputs(tmp_path)
    tsv, class2label = tmp_path / "imagenet_train.tsv", tmp_path / "class2label.pkl"
    imagenet.main(["--root", str(tmp_path / "train"), "--out", str(tsv), "--class2label-out", str(class2label),
                   "--class-names", str(inputs["names"]), "--first-synonym"])
    assert pickle.loads(class2label.read_bytes()) == {"goldfish": 0, "great white shark": 1, "tench": 2}
    rows = [row.split("\t") for row in tsv.read_text().splitlines()]
    assert [row[1:] for row in rows] == [["1", "goldfish"], ["1", "goldfish"], ["2", "great white shark"]]
    assert base64.b64decode(rows[2][0]) == (tmp_path / "train/n02/n02_0.JPEG").read_bytes()
    _, data = dataset(ImageClassifyTask, ImageClassifyConfig, tsv, "valid", selected_cols="0,2",
                      ans2label_file=str(class2label))
    assert [data[i][BATCH_EXTRAS][REF_LABELS] for i in range(3)] == ["goldfish", "goldfish", "great white shark"]
    for i, key in enumerate([("n01", 0), ("n01", 1), ("n02", 0)]):
        assert_pixels(data[i]["patch_image"], inputs["pixels"][key])
    imagenet.main(["--root", str(tmp_path / "train"), "--out", str(tsv)])  # no names: sorted wnids
    assert [row.split("\t")[1:] for row in tsv.read_text().splitlines()] == [["1", "n01"], ["1", "n01"], ["2", "n02"]]


def test_imagenet_errors(tmp_path):
    inputs = _imagenet_inputs(tmp_path)
    args = ["--root", str(tmp_path / "train"), "--out", str(tmp_path / "x.tsv"), "--class-names", str(inputs["names"])]
    inputs["names"].write_text("n01 crane\nn02 crane\n")
    with pytest.raises(ConversionError, match=r"class names must be unique .*\{'crane': \['n01', 'n02'\]\}"):
        imagenet.main(args)
    inputs["names"].write_text("n01 goldfish\n")
    with pytest.raises(ConversionError, match=r"class folder\(s\) \['n02'\] not listed in .*LOC_synset_mapping.txt"):
        imagenet.main(args)
    inputs["names"].write_text("n01 goldfish\nn02\n")
    with pytest.raises(ConversionError, match=r"LOC_synset_mapping.txt: line 2: expected '<wnid> <class name>'"):
        imagenet.main(args)


@pytest.mark.parametrize("module", [coco_captions, vqav2, refcoco, snli_ve, imagenet])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {module.__name__}") and "--image-column" in out and "example" in out
