"""The image_classify task (reference §5.7, §8.2): samples by hand, image transforms, all-candidate
hypotheses on the official fixture checkpoint, validation metric, and fairseq-train / fairseq-generate on
the toy world."""
import pickle
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils, metrics
from PIL import Image
from timm.data.auto_augment import AugmentOp, RandAugment
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision import transforms

import ofa_plugin  # noqa: F401  (registers the plugin's tasks and scorers)
from ofa_plugin.data.collate import BATCH_EXTRAS
from ofa_plugin.data.image_classify import OFA_AUGMENT_OPS, posterize_to_black_at_zero_bits
from ofa_plugin.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ofa_plugin.metrics.label_scorer import LabelScorer
from ofa_plugin.tasks.closed_set import CandidateChoice
from ofa_plugin.tasks.image_classify import ImageClassifyConfig, ImageClassifyTask
from ofa_plugin.vocab import encode_text

from conftest import BPE_DIR, OFFICIAL_MINI
from test_snli_ve import accuracy_line, image_field, train_and_generate

CLASSES = {"red circle": 0, "red square": 1, "blue circle": 2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def class_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("classes") / "class2label.pkl"
    path.write_bytes(pickle.dumps(CLASSES))
    return path


def _task(class_file, data=None, **options) -> ImageClassifyTask:
    cfg = ImageClassifyConfig(data=str(data) if data else None, selected_cols="0,2", bpe_dir=str(BPE_DIR),
                              ans2label_file=str(class_file), **options)
    return ImageClassifyTask.setup_task(cfg)


@pytest.fixture(scope="module")
def task(class_file):
    return _task(class_file, patch_image_size=32)


def test_candidates_come_from_the_class_file_in_label_order(task):
    assert task.candidates.answers == list(CLASSES)
    assert task.constraint_trie is task.candidates.trie


def test_sample_construction(task):
    dictionary, tokenizer = task.tgt_dict, task.tokenizer
    bos, eos = dictionary.bos(), dictionary.eos()
    red, circle, square, blue = (encode_text(dictionary, tokenizer, f" {w}").item()
                                 for w in ("red", "circle", "square", "blue"))
    sample = task.build_sample_builder("valid", "rows.tsv")([image_field(), "red circle"], 5)
    assert tokenizer.decode(dictionary.string(sample["source"][1:-1])) == " what does the image describe?"
    assert (sample["source"][0], sample["source"][-1]) == (bos, eos)
    assert sample["uniq_id"] == 5
    assert sample["prev_output_tokens"].tolist() == [bos, red, circle]
    assert sample["target"].tolist() == [red, circle, eos]
    assert sample[BATCH_EXTRAS] == {"decoder_prompts": [bos], "ref_labels": "red circle"}
    allowed = [row.nonzero().flatten().tolist() for row in sample["constraint_mask"]]
    assert allowed == [sorted([red, blue]), sorted([circle, square]), [eos]]
    assert sample["patch_image"].shape == (3, 32, 32)


@pytest.mark.parametrize("columns, message", [
    (["red circle"], r"rows.tsv: row 3: image_classify rows need 2 selected columns \(image, label name\), got 1"),
    ([image_field(), "1", "red circle"], r"rows.tsv: row 3: image_classify rows need 2 .* got 3"),
    ([image_field(), "green circle"], r"rows.tsv: row 3: answer 'green circle' is not one of the 3 candidate"),
])
def test_bad_rows_name_file_and_row(task, columns, message):
    with pytest.raises(ValueError, match=message):
        task.build_sample_builder("valid", "rows.tsv")(columns, 3)


@pytest.mark.parametrize("imagenet, mean, std", [(True, IMAGENET_MEAN, IMAGENET_STD), (False, (0.5,) * 3, (0.5,) * 3)])
def test_evaluation_transform_is_a_square_resize_with_the_chosen_statistics(class_file, imagenet, mean, std):
    task = _task(class_file, patch_image_size=16, imagenet_default_mean_and_std=imagenet)
    transform = task.build_sample_builder("test", "rows.tsv").transform
    image = transform(Image.new("RGB", (40, 10), (128, 64, 0)))
    expected = [(value / 255 - m) / s for value, m, s in zip((128, 64, 0), mean, std)]
    assert image.shape == (3, 16, 16)
    for channel, value in enumerate(expected):
        torch.testing.assert_close(image[channel], torch.full((16, 16), value), atol=1e-6, rtol=0)


def test_training_transform_is_the_official_augmentation(class_file):
    task = _task(class_file, patch_image_size=32, imagenet_default_mean_and_std=True)
    transform = task.build_sample_builder("train", "rows.tsv").transform
    steps = transform.transforms
    assert [type(step).__name__ for step in steps] == [
        "RandomResizedCropAndInterpolation", "RandomHorizontalFlip", "RandAugment", "RandAugment",
        "MaybeToTensor", "Normalize", "RandomErasing"]
    assert isinstance(steps[0], RandomResizedCropAndInterpolation) and steps[0].size == (32, 32)
    assert steps[5].mean.tolist() == pytest.approx(IMAGENET_MEAN)
    assert steps[5].std.tolist() == pytest.approx(IMAGENET_STD)
    assert steps[6].probability == 0.25 and steps[6].mode == "pixel"
    timm_ops = [op.name for op in steps[2].ops]
    assert "Invert" in timm_ops and steps[2].num_layers == 2 and steps[2].ops[0].magnitude == 9
    ofa = steps[3]
    assert isinstance(ofa, RandAugment) and ofa.num_layers == 2
    assert isinstance(ofa.ops[0], torch.nn.Identity)
    assert [op.name for op in ofa.ops[1:]] == list(OFA_AUGMENT_OPS)
    assert all(isinstance(op, AugmentOp) and op.prob == 0.5 and op.magnitude == 7 for op in ofa.ops[1:])
    torch.manual_seed(0)
    assert transform(Image.new("RGB", (50, 40), (10, 200, 30))).shape == (3, 32, 32)
    assert isinstance(task.build_sample_builder("valid", "rows.tsv").transform, transforms.Compose)


def test_posterize_at_magnitude_ten_gives_a_black_image_instead_of_crashing(class_file):
    """timm's PosterizeIncreasing keeps 0 bits at magnitude 10, which Pillow >= 10 refuses; training used to crash."""
    task = _task(class_file, patch_image_size=32)
    timm_rand_augment = task.build_sample_builder("train", "rows.tsv").transform.transforms[2]
    posterize = [op for op in timm_rand_augment.ops if op.name == "PosterizeIncreasing"]
    assert posterize, "rand-m9-mstd0.5-inc1 has PosterizeIncreasing"
    op = posterize[0]
    op.magnitude, op.magnitude_std, op.prob = 10, 0, 1.0
    image = Image.new("RGB", (8, 8), (200, 120, 60))
    assert op(image).getextrema() == ((0, 0), (0, 0), (0, 0))
    assert posterize_to_black_at_zero_bits(image, 2).getpixel((0, 0)) == (192, 64, 0)


# ------------------------------------------------------------------ hypotheses on the fixture checkpoint


@pytest.fixture(scope="module")
def fixture_batch(class_file, tmp_path_factory):
    """Four fixture images with class names, the task, the fixture checkpoint and the batch."""
    rows = (OFFICIAL_MINI / "data" / "snli_ve_test.tsv").read_text().splitlines()[:4]
    names = ["red circle", "blue circle", "red square", "red circle"]
    tsv = tmp_path_factory.mktemp("classify") / "test.tsv"
    images = [row.split("\t")[2] for row in rows]
    tsv.write_text("".join(f"{image}\t{i + 1}\t{name}\n" for i, (image, name) in enumerate(zip(images, names))))
    task = _task(class_file, data=tsv, patch_image_size=128)
    models, _ = checkpoint_utils.load_model_ensemble([str(OFFICIAL_MINI / "checkpoint.pt")], task=task)
    task.load_dataset("test")
    dataset = task.dataset("test")
    return task, models[0].eval(), dataset.collater([dataset[i] for i in range(4)])


def _teacher_forced_token_scores(task, model, batch, b: int, answer_tokens: list) -> torch.Tensor:
    """Trie-renormalised log-probs of answer + eos for sample b, from one plain forward pass."""
    bos, eos = task.tgt_dict.bos(), task.tgt_dict.eos()
    net_input = {k: v[b:b + 1] for k, v in batch["net_input"].items() if k != "prev_output_tokens"}
    with torch.no_grad():
        logits, _ = model(**net_input, prev_output_tokens=torch.tensor([[bos] + answer_tokens]))
    targets = answer_tokens + [eos]
    allowed = task.candidates.trie.allowed_mask([[bos] + answer_tokens[:j] for j in range(len(targets))],
                                                logits.size(-1))
    lprobs = F.log_softmax(logits[0].masked_fill(~allowed, float("-inf")), dim=-1)
    return lprobs[torch.arange(len(targets)), torch.tensor(targets)]


def test_hypotheses_are_the_best_candidates_with_token_scores(fixture_batch):
    task, model, batch = fixture_batch
    scores, _ = task.score_batch([model], batch)
    scorer = LabelScorer(None)
    hypos = task.inference_step(None, [model], batch)
    eos = task.tgt_dict.eos()
    for b, ((hypo,), sample_scores) in enumerate(zip(hypos, scores)):
        k = int(sample_scores.argmax())
        answer_tokens = task.candidates.tokens[k].tolist()
        assert hypo["tokens"].tolist() == answer_tokens + [eos] and hypo["alignment"] is None
        assert hypo["score"] == pytest.approx(float(sample_scores[k]), abs=1e-6)
        expected = _teacher_forced_token_scores(task, model, batch, b, answer_tokens)
        torch.testing.assert_close(hypo["positional_scores"], expected, atol=1e-5, rtol=0)
        assert float(expected.sum()) == pytest.approx(float(sample_scores[k]), abs=1e-5)
    for reference in batch["ref_labels"]:
        scorer.add_string(f" {reference}", "ignored")
    answers = [task.candidates.answers[k] for k in scores.argmax(1).tolist()]
    assert [p.record() for p in scorer.predictions] == [{"uniq_id": i, "answer": a} for i, a in enumerate(answers)]


class _Criterion:
    def __call__(self, model, sample):
        return torch.tensor(0.0), 1, {"ntokens": 3, "nsentences": 3, "sample_size": 1}

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        """No loss metrics."""


def test_validation_metric_uses_the_ema_model_under_uses_ema(class_file, monkeypatch):
    task = _task(class_file, uses_ema=True)
    assert task.uses_ema
    model, ema = SimpleNamespace(answers=["red circle"] * 3), SimpleNamespace(answers=["blue circle"] * 3)
    model.eval = ema.eval = lambda: None
    monkeypatch.setattr(task, "choose", lambda models, sample: CandidateChoice([], models[0].answers, None, None))
    sample = {"uniq_id": [0, 1, 2], "ref_labels": ["blue circle", "red circle", "blue circle"]}
    with pytest.raises(ValueError, match="--uses-ema validates with the EMA model: train with --store-ema"):
        task.valid_step(sample, model, _Criterion())
    _, _, log = task.valid_step(sample, model, _Criterion(), ema_model=ema)
    assert (log["_score_sum"], log["_score_cnt"]) == (2, 3)
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics([log], _Criterion())
        assert aggregator.get_smoothed_values()["score"] == 0.667  # 3 decimals, as official


@pytest.mark.slow
def test_toy_classification_trains_and_generates(tmp_path):
    flags = ["--task", "image_classify", "--selected-cols", "0,2", "--imagenet-default-mean-and-std",
             "--ans2label-file", str(tmp_path / "world" / "classify_class2label.pkl")]
    world, train_log, output, predictions = train_and_generate(tmp_path, "classify", flags, "score")
    scores = [float(s) for s in re.findall(r"\| valid on 'valid' subset \|.* score ([0-9.]+)", train_log)]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    accuracy, correct, total = accuracy_line(output)
    references = [line.split("\t")[2] for line in (world / "classify_test.tsv").read_text().splitlines()]
    classes = set(pickle.loads((world / "classify_class2label.pkl").read_bytes()))
    assert [p["uniq_id"] for p in predictions] == list(range(8))
    assert total == 8 and correct == sum(p["answer"] == r for p, r in zip(predictions, references))
    assert accuracy == pytest.approx(correct / total, abs=1e-4)
    assert {p["answer"] for p in predictions} <= classes
