"""Closed-set decoding: answer trie, decoder prompt types, all-candidate scoring and trie-constrained
beam search, checked on hand-made cases and against brute-force references on a tiny random model.
(Parity with the official VQA/SNLI-VE goldens is in the task tests.)"""
import json
import pickle

import pytest
import torch
import torch.nn.functional as F

from ofa_plugin.candidate_scoring import score_candidate_tokens, score_candidates
from ofa_plugin.data.answers import CandidateAnswers, load_ans2label
from ofa_plugin.data.collate import collate_constraint_masks
from ofa_plugin.data.decoder_prompts import decoder_prompt, prompted_target
from ofa_plugin.generate import OFASequenceGenerator
from ofa_plugin.trie import AnswerTrie

from test_model import build, images, text_tokens, vocab  # noqa: F401  (fixtures)

BOS, PAD, EOS = 0, 1, 2

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_trie_lists_children_in_insertion_order_and_eos_off_the_tree():
    trie = AnswerTrie([[BOS, 7, 8, EOS], [BOS, 7, EOS], [BOS, 9, EOS], [BOS, 9, EOS]], eos=EOS)
    assert trie.num_sequences == 3
    assert trie.next_tokens([BOS]) == [7, 9]
    assert trie.next_tokens([BOS, 7]) == [8, EOS]
    assert trie.next_tokens([BOS, 7, 8]) == [EOS]
    assert trie.next_tokens([BOS, 5]) == [EOS]  # not a candidate prefix: only eos, decoding stops
    mask = trie.allowed_mask([[BOS], [BOS, 7], [BOS, 5]], vocab_size=10)
    assert mask.tolist() == [[i in (7, 9) for i in range(10)], [i in (8, EOS) for i in range(10)],
                             [i == EOS for i in range(10)]]


def test_decoder_prompt_types():
    source = torch.tensor([BOS, 10, 11, EOS])
    assert decoder_prompt(source, "none", BOS).tolist() == [BOS]
    assert decoder_prompt(source, "src", BOS).tolist() == [BOS, 10, 11, EOS]
    assert decoder_prompt(source, "prev_output", BOS).tolist() == [BOS, 10, 11]
    with pytest.raises(ValueError, match="--prompt-type must be one of none, src, prev_output, got None"):
        decoder_prompt(source, None, BOS)


def test_prompted_target_pads_the_prompt_and_masks_answer_rows_from_the_trie():
    trie = AnswerTrie([[BOS, 20, 21, EOS], [BOS, 22, EOS]], eos=EOS)
    prompt = torch.tensor([BOS, 10, 11])  # prev_output prompt of source [bos, 10, 11, eos]
    result = prompted_target(prompt, torch.tensor([20, 21]), PAD, EOS, trie, vocab_size=24)
    assert result.prev_output_tokens.tolist() == [BOS, 10, 11, 20, 21]
    assert result.target.tolist() == [PAD, PAD, 20, 21, EOS]
    allowed = [set(row.nonzero().flatten().tolist()) for row in result.constraint_mask]
    assert allowed == [set(), set(), {20, 22}, {21}, {EOS}]


def test_prompted_target_without_eos_is_the_glue_layout():
    trie = AnswerTrie([[BOS, 30, EOS], [BOS, 31, EOS]], eos=EOS)
    source = torch.tensor([BOS, 10, 11, EOS])
    src = prompted_target(decoder_prompt(source, "src", BOS), torch.tensor([31]), PAD, None, trie, 32)
    assert src.prev_output_tokens.tolist() == [BOS, 10, 11, EOS]
    assert src.target.tolist() == [PAD, PAD, PAD, 31]
    assert src.constraint_mask[:3].any().item() is False
    assert src.constraint_mask[3].nonzero().flatten().tolist() == [30, 31]
    none = prompted_target(decoder_prompt(source, "none", BOS), torch.tensor([30]), PAD, None)
    assert (none.prev_output_tokens.tolist(), none.target.tolist(), none.constraint_mask) == ([BOS], [30], None)


def test_constraint_masks_are_padded_with_true():
    masks = collate_constraint_masks([torch.zeros(2, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool)])
    assert masks.tolist() == [[[False] * 3] * 2, [[False] * 3, [True] * 3]]


def test_ans2label_from_pickle_json_and_option(tmp_path):
    answers = {"yes": 0, "no": 1, "two": 2}
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(answers))
    (tmp_path / "a.json").write_text(json.dumps(answers))
    assert list(load_ans2label(str(tmp_path / "a.pkl"), "{}")) == ["yes", "no", "two"]
    assert list(load_ans2label(str(tmp_path / "a.json"), "{}")) == ["yes", "no", "two"]
    assert load_ans2label(None, '{"no": 0, "yes":1}') == {"no": 0, "yes": 1}
    with pytest.raises(FileNotFoundError, match="missing.pkl does not exist"):
        load_ans2label(str(tmp_path / "missing.pkl"), "{}")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="bad.pkl is not a pickled"):
        load_ans2label(str(tmp_path / "bad.pkl"), "{}")
    with pytest.raises(ValueError, match="--ans2label-dict is not valid JSON"):
        load_ans2label(None, "{no: 0}")


# ------------------------------------------------------------------------------ tiny-model references

def _candidates(d, words: list[list[int]]) -> CandidateAnswers:
    tokens = [torch.tensor(w) for w in words]
    trie = AnswerTrie(([d.bos()] + w + [d.eos()] for w in words), eos=d.eos())
    return CandidateAnswers([" ".join(map(str, w)) for w in words], tokens, trie)


@pytest.fixture(scope="module")
def setting(vocab):
    """A tiny model, a batch of 3 samples with prompts of different lengths, 5 candidates sharing prefixes."""
    model = build(vocab, seed=3)
    src = text_tokens(vocab, 3, 6, seed=4, lengths=[6, 4, 5])
    src[:, 0] = vocab.bos()
    sample = {"net_input": {"src_tokens": src, "src_lengths": src.ne(vocab.pad()).sum(1),
                            "patch_images": images(3, 32, seed=5), "patch_masks": torch.ones(3, dtype=torch.bool)}}
    prompts = [row[: int(row.ne(vocab.pad()).sum()) - 1] for row in src]  # prev_output prompts
    w = [vocab.nspecial + i for i in range(8)]
    candidates = _candidates(vocab, [[w[0]], [w[0], w[1]], [w[2], w[3], w[4]], [w[5]], [w[2], w[6]]])
    return model, sample, prompts, candidates


def _brute_force_scores(model, sample, prompts, candidates, append_eos=True) -> torch.Tensor:
    """Each (sample, candidate) run alone through the full model, trie mask applied per position."""
    return _brute_force_token_scores(model, sample, prompts, candidates, append_eos).sum(-1)


def _brute_force_token_scores(model, sample, prompts, candidates, append_eos=True) -> torch.Tensor:
    """(B, K, longest candidate + 1) log-probs of each candidate's tokens (and eos), 0 where none; each
    (sample, candidate) run alone through the full model, trie mask applied per position."""
    d = model.decoder.dictionary
    net = sample["net_input"]
    scores = torch.zeros(len(prompts), len(candidates), max(len(t) for t in candidates.tokens) + 1)
    for b, prompt in enumerate(prompts):
        for k, answer in enumerate(candidates.tokens):
            predicted = answer.tolist() + ([d.eos()] if append_eos else [])
            prev = torch.cat([prompt, torch.tensor(predicted[:-1], dtype=torch.long)]).unsqueeze(0)
            logits, _ = model(net["src_tokens"][b:b + 1], net["src_lengths"][b:b + 1], prev,
                              patch_images=net["patch_images"][b:b + 1], patch_masks=net["patch_masks"][b:b + 1])
            for j, token in enumerate(predicted):
                allowed = candidates.trie.next_tokens([d.bos()] + predicted[:j])
                row = logits[0, len(prompt) - 1 + j]
                masked = torch.full_like(row, float("-inf"))
                masked[allowed] = row[allowed]
                scores[b, k, j] = F.log_softmax(masked, dim=-1)[token]
    return scores


@pytest.mark.parametrize("chunk_size", [1, 2, 20])
def test_candidate_scores_equal_brute_force(setting, chunk_size):
    model, sample, prompts, candidates = setting
    with torch.no_grad():
        expected = _brute_force_scores(model, sample, prompts, candidates)
        actual = score_candidates(model, sample, candidates, prompts, chunk_size=chunk_size)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_candidate_scores_without_eos(setting):
    model, sample, prompts, candidates = setting
    with torch.no_grad():
        expected = _brute_force_scores(model, sample, prompts, candidates, append_eos=False)
        actual = score_candidates(model, sample, candidates, prompts, append_eos=False)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("append_eos", [True, False])
def test_candidate_token_scores_equal_brute_force(setting, append_eos):
    """The per-token log-probs (what hypotheses print as positional scores) next to unchanged sums."""
    model, sample, prompts, candidates = setting
    with torch.no_grad():
        expected = _brute_force_token_scores(model, sample, prompts, candidates, append_eos)
        sums, token_scores = score_candidate_tokens(model, sample, candidates, prompts, chunk_size=2,
                                                    append_eos=append_eos)
        plain = score_candidates(model, sample, candidates, prompts, chunk_size=2, append_eos=append_eos)
    torch.testing.assert_close(token_scores, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(sums, plain)
    if not append_eos:  # the eos slot of every candidate stays 0
        lengths = torch.tensor([len(t) for t in candidates.tokens])
        assert not token_scores.gather(2, lengths.expand(len(prompts), -1).unsqueeze(2)).any()


def _generate(model, sample, prompts, candidates, beam: int):
    d = model.decoder.dictionary
    generator = OFASequenceGenerator([model], d, beam_size=beam, normalize_scores=False, max_len_b=30,
                                     constraint_trie=candidates.trie)
    prefix = torch.nn.utils.rnn.pad_sequence([p[1:] for p in prompts], batch_first=True, padding_value=d.pad())
    with torch.no_grad():
        return generator.generate([model], sample, prefix_tokens=prefix, bos_token=d.bos())


def test_trie_beam_search_only_produces_candidates_after_each_prefix(setting):
    model, sample, prompts, candidates = setting
    answers = {tuple(t.tolist()) for t in candidates.tokens}
    for prompt, hypos in zip(prompts, _generate(model, sample, prompts, candidates, beam=3)):
        for hypo in hypos:
            tokens = hypo["tokens"].tolist()
            assert tokens[: len(prompt) - 1] == prompt[1:].tolist()
            assert tuple(tokens[len(prompt) - 1:-1]) in answers and tokens[-1] == model.decoder.dictionary.eos()


def test_exhaustive_trie_beam_search_picks_the_best_scored_candidate(setting):
    """With a beam wider than the trie, beam search is exhaustive: its best answer is the all-candidate
    argmax, and its unnormalised score minus the forced prefix's log-probs is that candidate's score."""
    model, sample, prompts, candidates = setting
    with torch.no_grad():
        scores = score_candidates(model, sample, candidates, prompts)
    for b, (prompt, hypos) in enumerate(zip(prompts, _generate(model, sample, prompts, candidates, beam=5))):
        best = hypos[0]
        answer = best["tokens"][len(prompt) - 1:-1].tolist()
        k = int(scores[b].argmax())
        assert answer == candidates.tokens[k].tolist()
        answer_score = best["positional_scores"][len(prompt) - 1:].sum()
        assert answer_score.item() == pytest.approx(scores[b, k].item(), abs=1e-4)


def test_beam_wider_than_the_candidate_set_is_narrowed(setting):
    model, sample, prompts, candidates = setting
    hypos = _generate(model, sample, prompts, candidates, beam=8)  # stock fairseq would never finish
    assert [len(h) for h in hypos] == [len(candidates)] * len(prompts)


def test_batched_trie_beam_search_equals_one_sentence_at_a_time(setting):
    """Sentences finish at different steps; the per-row prefix lengths must follow the generator's pruning."""
    model, sample, prompts, candidates = setting
    batched = _generate(model, sample, prompts, candidates, beam=2)
    for b in range(len(prompts)):
        net = {name: value[b:b + 1] for name, value in sample["net_input"].items()}
        net["src_tokens"] = net["src_tokens"][:, : int(net["src_lengths"])]
        alone = _generate(model, {"net_input": net}, prompts[b:b + 1], candidates, beam=2)[0]
        assert [h["tokens"].tolist() for h in alone] == [h["tokens"].tolist() for h in batched[b]]
        torch.testing.assert_close(torch.stack([h["score"] for h in alone]),
                                   torch.stack([h["score"] for h in batched[b]]), atol=1e-5, rtol=1e-5)
