"""The image-reliance measure (ofa_plugin.metrics.image_reliance) on hand-made models and batches."""
import math

import pytest
import torch
from torch import nn

from ofa_plugin.metrics.image_reliance import caption_losses, main

PAD, VOCAB = 1, 8


class ReadsTheImage(nn.Module):
    """Puts logit 2 on the token equal to 4 + the image's pixel value, 0 elsewhere; or ignores the image."""

    def __init__(self, looks: bool):
        super().__init__()
        self.looks = looks

    def forward(self, src_tokens, patch_images, prev_output_tokens, **_):
        logits = torch.zeros(prev_output_tokens.size(0), prev_output_tokens.size(1), VOCAB)
        if self.looks:
            favourite = 4 + patch_images.flatten(1)[:, 0].long()
            logits[torch.arange(len(favourite)), :, favourite] = 2.0
        return logits, {}


def _batch():
    # three rows whose target token is 4 + the value of their image; row 2 has a second, padded position
    images = torch.arange(3, dtype=torch.float).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    target = torch.tensor([[4, PAD], [5, PAD], [6, 6]])
    return {"net_input": {"src_tokens": torch.zeros(3, 2, dtype=torch.long), "patch_images": images,
                          "prev_output_tokens": target.clone()}, "target": target}


def test_a_model_that_reads_the_image_loses_more_with_rolled_images():
    hit = -math.log(math.exp(2) / (math.exp(2) + VOCAB - 1))  # the favourite token's loss
    miss = -math.log(1 / (math.exp(2) + VOCAB - 1))
    true_loss, rolled_loss = caption_losses(ReadsTheImage(looks=True), [_batch()], PAD)
    assert true_loss == pytest.approx(hit) and rolled_loss == pytest.approx(miss)  # rolled: every row gets another's


def test_a_model_that_ignores_the_image_loses_the_same():
    true_loss, rolled_loss = caption_losses(ReadsTheImage(looks=False), [_batch(), _batch()], PAD)
    assert true_loss == rolled_loss == pytest.approx(math.log(VOCAB))


def test_nothing_to_score_and_bad_options_are_clear_errors(tmp_path, capsys):
    batch = _batch()
    batch["target"][:] = PAD
    with pytest.raises(ValueError, match="no target tokens"):
        caption_losses(ReadsTheImage(looks=True), [batch], PAD)
    for argv, message in ((["--batch-size", "1"], "at least 2"), ([], "no checkpoint file")):
        with pytest.raises(SystemExit):
            main(["--path", str(tmp_path / "missing.pt"), "--data", "x.tsv", "--bpe-dir", "v", *argv])
        assert message in capsys.readouterr().err
