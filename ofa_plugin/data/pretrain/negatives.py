"""Negative captions and answers for image-text matching (reference §10.2-10.3), from `neg_sample_dir`:
`all_captions.txt` (caption pool), `object.txt` (object pool), `type2ans.json` (answer type -> answers)."""
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

NEGATIVE_FILES = ("all_captions.txt", "object.txt", "type2ans.json")
OTHER_TYPE = "other"  # fallback answer type
COUNT_TYPE = "how many"


def _lines(path: Path) -> List[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"{path}: needs at least 2 non-empty lines, got {len(lines)}")
    return lines


def _pick_other(pool: List[str], avoid: str, rng: random.Random) -> str:
    """A random item of pool[:-1], the last item standing in when the pick equals `avoid` (official)."""
    choice = rng.choice(pool[:-1])
    return pool[-1] if choice == avoid else choice


@dataclass
class NegativeSamples:
    captions: List[str]
    objects: List[str]
    type2ans: Dict[str, List[str]]

    def __post_init__(self) -> None:
        self.ans2type = {answer: kind for kind, answers in self.type2ans.items() for answer in answers}

    @classmethod
    def load(cls, folder: str) -> "NegativeSamples":
        root = Path(folder)
        missing = [name for name in NEGATIVE_FILES if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(f"--neg-sample-dir {folder} lacks {', '.join(missing)}")
        type2ans = json.loads((root / "type2ans.json").read_text(encoding="utf-8"))
        if not isinstance(type2ans, dict) or len(type2ans.get(OTHER_TYPE, [])) < 2:
            raise ValueError(f"{root / 'type2ans.json'}: must map answer types to answer lists, with at least "
                             f"2 answers of type {OTHER_TYPE!r}")
        return cls(_lines(root / "all_captions.txt"), _lines(root / "object.txt"), type2ans)

    def caption(self, caption: str, gt_objects: List[str], rng: random.Random) -> str:
        """With probability 0.4 (and ground-truth objects) the caption with one of its objects replaced by
        another object, else a random caption of the pool."""
        if gt_objects and rng.random() > 0.6:
            gt_object = rng.choice(gt_objects)
            return caption.replace(gt_object, _pick_other(self.objects, gt_object, rng))
        return rng.choice(self.captions)

    def answer(self, answer: str, conf: float, rng: random.Random) -> str:
        """A wrong answer: with probability about conf - 0.1 one of the same type (a count +-1 half of the
        time for "how many" numbers; never below 0), else one of type "other"."""
        u = rng.random()
        kind = self.ans2type.get(answer)
        if conf > u + 0.1 and kind is not None:
            if kind == COUNT_TYPE and answer.isdigit() and u > 0.5:
                return str(int(answer) + rng.choice((-1, 1))) if answer != "0" else "1"
            if len(self.type2ans[kind]) >= 2:
                return _pick_other(self.type2ans[kind], answer, rng)
        return _pick_other(self.type2ans[OTHER_TYPE], answer, rng)
