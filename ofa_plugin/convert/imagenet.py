"""ImageNet-style class folders -> image_classify TSV + class-name -> label pickle (reference §5.7, §9.3).

Input: `<root>/<wnid>/<image>` (JPEG/PNG files; the validation set must be sorted into class folders
too), and optionally a class-name file with one `<wnid> <name>` line per class (ImageNet's
LOC_synset_mapping.txt, "n01440764 tench, Tinca tinca", or words.txt with a tab). Classes are the file's
wnids in file order (so train and val get the same labels even if a folder is missing), else the sorted
folder names; a class's name is its line's text (`--first-synonym`: up to the first comma), else the wnid.

Columns: image, label index (1-based), class name (`--selected-cols 0,2`). The pickle (`--class2label-out`,
the task's `--ans2label-file`) maps class name -> 0-based label in class order; names must be unique,
since the task predicts the name (LOC_synset_mapping.txt names two classes "crane" and, with
`--first-synonym`, two "maillot": edit those lines, e.g. "crane bird").
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from .common import (ConversionError, ImageColumn, clean_text, converter_parser, input_dir, input_file, run,
                     write_pickle, write_rows)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})


def read_class_names(path: Path, first_synonym: bool) -> dict[str, str]:
    """wnid -> class name, in file order."""
    names: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ConversionError(f"{where}: expected '<wnid> <class name>', got {line!r}")
        wnid, text = parts
        if wnid in names:
            raise ConversionError(f"{where}: wnid {wnid} is listed twice")
        name = text.split(",")[0] if first_synonym else text
        names[wnid] = clean_text(name, where)
    if not names:
        raise ConversionError(f"{path}: no class lines")
    return names


def class_list(root: Path, names_file: Path | None, first_synonym: bool) -> list[tuple[str, str]]:
    """(wnid, name) of every class in label order; names must be unique."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not folders:
        raise ConversionError(f"{root}: no class folders")
    if names_file is None:
        classes = [(wnid, wnid) for wnid in folders]
    else:
        names = read_class_names(names_file, first_synonym)
        unknown = [wnid for wnid in folders if wnid not in names]
        if unknown:
            raise ConversionError(f"{root}: class folder(s) {unknown[:5]} not listed in {names_file}")
        classes = list(names.items())
    by_name: dict[str, list[str]] = {}
    for wnid, name in classes:
        by_name.setdefault(name, []).append(wnid)
    duplicates = {name: wnids for name, wnids in by_name.items() if len(wnids) > 1}
    if duplicates:
        raise ConversionError(f"{names_file or root}: class names must be unique (the task predicts the name); "
                              f"shared by several wnids: {duplicates}")
    return classes


def image_files(root: Path, classes: Sequence[tuple[str, str]]) -> list[tuple[Path, int]]:
    """(image file, 0-based label) of every image in the class folders, sorted by class then file name."""
    files = []
    for label, (wnid, _) in enumerate(classes):
        folder = root / wnid
        if folder.is_dir():
            files += [(p, label) for p in sorted(folder.iterdir())
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ConversionError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    return files


def classify_rows(files: Sequence[tuple[Path, int]], classes: Sequence[tuple[str, str]],
                  column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """image, label index (1-based), class name."""
    for path, label in files:
        where = f"class {classes[label][0]}"
        yield [column(path, where), str(label + 1), classes[label][1]], where


def main(argv: Sequence[str] | None = None) -> Path:
    """Convert; returns the TSV path."""
    parser = converter_parser(
        "imagenet", "ImageNet-style class folders -> image_classify TSV + class-name->label pickle.",
        "example (train with --selected-cols 0,2 --ans2label-file class2label.pkl):\n"
        "  python -m ofa_plugin.convert.imagenet --root imagenet/train --class-names LOC_synset_mapping.txt \\\n"
        "      --out imagenet_train.tsv --class2label-out class2label.pkl")
    parser.add_argument("--root", required=True, help="folder of class folders <wnid>/<image>")
    parser.add_argument("--out", required=True, type=Path, help="the TSV to write")
    parser.add_argument("--class2label-out", type=Path, help="write the class-name->label pickle here")
    parser.add_argument("--class-names", help="'<wnid> <name>' lines (LOC_synset_mapping.txt, words.txt); "
                                              "default: classes = sorted folder names, named by their wnid")
    parser.add_argument("--first-synonym", action="store_true",
                        help="name a class by the text before the first comma ('tench', not 'tench, Tinca tinca')")
    args = parser.parse_args(argv)
    root = input_dir(args.root, "class folder root")
    names_file = input_file(args.class_names, "class-name file") if args.class_names else None
    classes = class_list(root, names_file, args.first_synonym)
    files = image_files(root, classes)
    logger.info("%d images of %d classes", len(files), len(classes))
    if args.class2label_out:
        write_pickle({name: label for label, (_, name) in enumerate(classes)}, args.class2label_out)
    write_rows(args.out, classify_rows(files, classes, ImageColumn(args.image_column, args.out.parent)), len(files),
               args.log_every)
    return args.out


if __name__ == "__main__":
    run(main)
